/* Stubs until this part lands: each reports that it is not implemented yet. */
#include "internal.h"
#include "nb_data.h"

#include <math.h>

double nb_accuracy(nb_tensor *pred, nb_tensor *target)
{
    (void)pred; (void)target;
    nbi_error(NB_ERR_STATE, "nb_accuracy: not implemented yet");
    return NAN;
}

nb_confusion * nb_confusion_new(int64_t num_classes)
{
    (void)num_classes;
    return nbi_error(NB_ERR_STATE, "nb_confusion_new: not implemented yet");
}

nb_status nb_confusion_add(nb_confusion *c, nb_tensor *pred, nb_tensor *target)
{
    (void)c; (void)pred; (void)target;
    return nbi_fail(NB_ERR_STATE, "nb_confusion_add: not implemented yet");
}

double nb_confusion_accuracy(const nb_confusion *c)
{
    (void)c;
    nbi_error(NB_ERR_STATE, "nb_confusion_accuracy: not implemented yet");
    return NAN;
}

double nb_confusion_precision(const nb_confusion *c, int64_t cls)
{
    (void)c; (void)cls;
    nbi_error(NB_ERR_STATE, "nb_confusion_precision: not implemented yet");
    return NAN;
}

double nb_confusion_recall(const nb_confusion *c, int64_t cls)
{
    (void)c; (void)cls;
    nbi_error(NB_ERR_STATE, "nb_confusion_recall: not implemented yet");
    return NAN;
}

double nb_confusion_f1(const nb_confusion *c, int64_t cls)
{
    (void)c; (void)cls;
    nbi_error(NB_ERR_STATE, "nb_confusion_f1: not implemented yet");
    return NAN;
}

double nb_confusion_macro_precision(const nb_confusion *c)
{
    (void)c;
    nbi_error(NB_ERR_STATE, "nb_confusion_macro_precision: not implemented yet");
    return NAN;
}

double nb_confusion_macro_recall(const nb_confusion *c)
{
    (void)c;
    nbi_error(NB_ERR_STATE, "nb_confusion_macro_recall: not implemented yet");
    return NAN;
}

double nb_confusion_macro_f1(const nb_confusion *c)
{
    (void)c;
    nbi_error(NB_ERR_STATE, "nb_confusion_macro_f1: not implemented yet");
    return NAN;
}

nb_status nb_confusion_print(const nb_confusion *c, FILE *f, const char *const *class_names)
{
    (void)c; (void)f; (void)class_names;
    return nbi_fail(NB_ERR_STATE, "nb_confusion_print: not implemented yet");
}

void nb_confusion_free(nb_confusion *c)
{
    (void)c;
    nbi_error(NB_ERR_STATE, "nb_confusion_free: not implemented yet");
}
