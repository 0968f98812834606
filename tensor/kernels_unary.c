/* placeholder: filled by its op family */
#include "internal.h"
