/* tiny_gpt: a character-level GPT written with nn/'s attention layers, pretrained on one text and fine-tuned on
 * another, fully and with LoRA.
 *
 * 1. Data. The pretraining text (Tiny Shakespeare by default) and the fine-tuning text (Alice's Adventures in
 *    Wonderland) are read as UTF-8; the vocabulary is every character of either (saved in the checkpoint's
 *    metadata). Each text is cut into pieces of a few hundred characters, and a seeded tenth of the pieces is held
 *    out for validation; batches are random windows of context + 1 characters from the training pieces.
 * 2. Baselines. Unigram and bigram character models (add-one smoothing) counted on the training pieces and scored
 *    on the same validation windows as the network: what a transformer has to beat.
 * 3. Pretraining. nb_gpt (default 4 layers, 4 heads, width 128, context 64; tied output head) trained with Adam
 *    (betas 0.9, 0.99), linear warm-up then cosine decay, gradient clipping at 1; the train loss (running mean over
 *    each evaluation interval, which the progress display counts as its "epochs") and the validation loss in
 *    nats/char. Then a sample, seeded, with temperature and top-k.
 * 4. Fine-tuning on the second text, from the same pretrained weights, two ways: all weights (full), and LoRA
 *    adapters on the chosen layers with the rest frozen. Each reports the validation loss on the new text before
 *    and after, its trainable parameter count, the peak of nabla's tensor memory, the time, and the validation loss
 *    on the first text afterwards (forgetting). The LoRA adapters are then merged into the weights, which must
 *    leave the loss unchanged, and may be saved alone (--save-lora).
 *
 *     tiny_gpt [--steps N] [--finetune-steps N] [--batch N] [--context N] [--layers N] [--heads N] [--width N]
 *              [--lr X] [--finetune-lr X] [--lora-lr X] [--lora-rank N] [--lora-alpha X] [--lora-targets LIST]
 *              [--text PATH] [--finetune-text PATH] [--save PATH] [--load PATH] [--save-lora PATH] [--data DIR] ...
 */
#include <nabla.h>

#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char *program = "tiny_gpt";

static void fail(void)
{
    fprintf(stderr, "%s: %s\n", program, nb_last_error());
    exit(EXIT_FAILURE);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", program);
        exit(EXIT_FAILURE);
    }
    return p;
}

/* ------------------------------------------------------------------------------------------------
 * Text and vocabulary
 * ---------------------------------------------------------------------------------------------- */
/* The characters of a file as Unicode code points, or NULL with errno set when it cannot be read. A byte that does
 * not start a valid UTF-8 sequence stands for itself (so Latin-1 text works too); NUL characters are dropped
 * (metadata strings cannot hold them). */
static uint32_t *read_text(const char *path, int64_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, len = 0;
    unsigned char *bytes = xmalloc(cap);
    size_t got;
    while ((got = fread(bytes + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            unsigned char *more = realloc(bytes, cap *= 2);
            if (!more) {
                fprintf(stderr, "%s: out of memory reading %s\n", program, path);
                exit(EXIT_FAILURE);
            }
            bytes = more;
        }
    }
    /* A directory opens like a file and then reads as an error (EISDIR), not as an empty text. */
    if (ferror(f)) {
        int error = errno;
        fclose(f);
        free(bytes);
        errno = error;
        return NULL;
    }
    fclose(f);
    uint32_t *cp = xmalloc(len * sizeof *cp);
    int64_t n = 0;
    for (size_t i = 0; i < len;) {
        unsigned c = bytes[i];
        int extra = c >= 0xF0 && c < 0xF5 ? 3 : c >= 0xE0 && c < 0xF0 ? 2 : c >= 0xC2 && c < 0xE0 ? 1 : 0;
        uint32_t v = c;
        bool valid = extra > 0 && i + (size_t)extra < len;
        for (int k = 1; valid && k <= extra; k++) valid = (bytes[i + (size_t)k] & 0xC0) == 0x80;
        if (valid) {
            v = c & (0x3F >> extra);
            for (int k = 1; k <= extra; k++) v = (v << 6) | (bytes[i + (size_t)k] & 0x3F);
            i += (size_t)extra + 1;
        } else {
            i++;
        }
        if (v != 0) cp[n++] = v;
    }
    free(bytes);
    *count = n;
    return cp;
}

static int encode_utf8(uint32_t v, char *out)
{
    if (v < 0x80) return out[0] = (char)v, 1;
    if (v < 0x800) return out[0] = (char)(0xC0 | v >> 6), out[1] = (char)(0x80 | (v & 0x3F)), 2;
    if (v < 0x10000) {
        out[0] = (char)(0xE0 | v >> 12), out[1] = (char)(0x80 | ((v >> 6) & 0x3F)), out[2] = (char)(0x80 | (v & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | v >> 18), out[1] = (char)(0x80 | ((v >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((v >> 6) & 0x3F)), out[3] = (char)(0x80 | (v & 0x3F));
    return 4;
}

typedef struct vocab {
    int64_t size;
    uint32_t *chars; /* sorted */
} vocab;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sorted distinct characters of the texts. */
static vocab build_vocab(int n, uint32_t *const *texts, const int64_t *lengths)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += lengths[i];
    uint32_t *all = xmalloc((size_t)total * sizeof *all);
    for (int i = 0, at = 0; i < n; at += (int)lengths[i], i++)
        memcpy(all + at, texts[i], (size_t)lengths[i] * sizeof *all);
    qsort(all, (size_t)total, sizeof *all, cmp_u32);
    int64_t size = 0;
    for (int64_t i = 0; i < total; i++)
        if (i == 0 || all[i] != all[size - 1]) all[size++] = all[i];
    return (vocab){size, all};
}

static int64_t vocab_index(const vocab *v, uint32_t c)
{
    uint32_t *hit = bsearch(&c, v->chars, (size_t)v->size, sizeof c, cmp_u32);
    return hit ? hit - v->chars : -1;
}

/* Token ids of a text; characters outside the vocabulary (a loaded model's) are dropped and counted. */
static int64_t *encode(const vocab *v, const uint32_t *text, int64_t n, int64_t *out_n, int64_t *dropped)
{
    int64_t *tok = xmalloc((size_t)n * sizeof *tok), m = 0;
    *dropped = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t id = vocab_index(v, text[i]);
        if (id >= 0) tok[m++] = id;
        else ++*dropped;
    }
    *out_n = m;
    return tok;
}

/* The vocabulary as metadata: UTF-8 text in chunks "vocab.0", "vocab.1", ... of at most 240 bytes each. */
static void vocab_to_metadata(const vocab *v, nb_metadata *meta)
{
    char chunk[256], key[32], utf[4];
    int len = 0, part = 0;
    for (int64_t i = 0; i <= v->size; i++) {
        int n = i < v->size ? encode_utf8(v->chars[i], utf) : 0;
        if (i == v->size || len + n > 240) {
            chunk[len] = 0;
            snprintf(key, sizeof key, "vocab.%d", part++);
            if (nb_metadata_set(meta, key, chunk) != NB_OK) fail();
            len = 0;
        }
        memcpy(chunk + len, utf, (size_t)n);
        len += n;
    }
    snprintf(key, sizeof key, "%lld", (long long)v->size);
    if (nb_metadata_set(meta, "vocab_size", key) != NB_OK) fail();
}

static bool vocab_from_metadata(const nb_metadata *meta, vocab *v)
{
    const char *size = nb_metadata_get(meta, "vocab_size");
    if (!size) return false;
    v->size = atoll(size);
    v->chars = xmalloc((size_t)v->size * sizeof *v->chars);
    int64_t n = 0;
    char key[32];
    for (int part = 0;; part++) {
        snprintf(key, sizeof key, "vocab.%d", part);
        const char *text = nb_metadata_get(meta, key);
        if (!text) break;
        /* written by vocab_to_metadata, so well-formed UTF-8 */
        const unsigned char *s = (const unsigned char *)text;
        while (*s && n < v->size) {
            unsigned c = *s;
            int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
            uint32_t cp = c & (0x7F >> extra);
            for (int k = 1; k <= extra && s[k]; k++) cp = (cp << 6) | (s[k] & 0x3F);
            v->chars[n++] = cp;
            s += extra + 1;
        }
    }
    return n == v->size;
}

/* ------------------------------------------------------------------------------------------------
 * Corpora: pieces split into training and validation, random windows, fixed evaluation windows
 * ---------------------------------------------------------------------------------------------- */
typedef struct corpus {
    const char *name;
    int64_t *tok, n;
    int64_t piece;                   /* piece length */
    int64_t *train, n_train;         /* start offsets of the training pieces */
    int64_t *val, n_val;             /* and of the validation pieces */
    nb_tensor *eval_x, *eval_y;      /* fixed validation windows (E, T) and their targets (E, T) */
} corpus;

/* Pieces of c->piece characters; the last one also takes the remainder of the text. */
static void split_corpus(corpus *c, int64_t context, double val_fraction, uint64_t seed)
{
    c->piece = 4 * (context + 1) > 256 ? 4 * (context + 1) : 256;
    int64_t pieces = c->n / c->piece;
    if (pieces < 2) {
        fprintf(stderr, "%s: %s has %lld characters: too short for windows of %lld (need two pieces of %lld)\n",
                program, c->name, (long long)c->n, (long long)context + 1, (long long)c->piece);
        exit(2);
    }
    nb_generator g;
    nb_generator_seed(&g, seed);
    int64_t *order = xmalloc((size_t)pieces * sizeof *order);
    for (int64_t i = 0; i < pieces; i++) order[i] = i;
    for (int64_t i = pieces - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)nb_random_below(&g, (uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    c->n_val = (int64_t)llround(val_fraction * (double)pieces);
    if (c->n_val < 1) c->n_val = 1;
    if (c->n_val >= pieces) c->n_val = pieces - 1;
    c->n_train = pieces - c->n_val;
    c->val = xmalloc((size_t)c->n_val * sizeof *c->val);
    c->train = xmalloc((size_t)c->n_train * sizeof *c->train);
    for (int64_t i = 0; i < pieces; i++) {
        int64_t start = order[i] * c->piece;
        if (i < c->n_val) c->val[i] = start;
        else c->train[i - c->n_val] = start;
    }
    free(order);
}

static int64_t piece_end(const corpus *c, int64_t start)
{
    int64_t last = (c->n / c->piece - 1) * c->piece;
    return start == last ? c->n : start + c->piece;
}

/* B windows of T + 1 characters from random pieces of the list: inputs x (B*T) and next characters y (B*T). */
static void sample_windows(const corpus *c, const int64_t *pieces, int64_t n_pieces, int64_t B, int64_t T,
                           nb_generator *g, int64_t *x, int64_t *y)
{
    for (int64_t b = 0; b < B; b++) {
        int64_t start = pieces[nb_random_below(g, (uint64_t)n_pieces)];
        int64_t span = piece_end(c, start) - start - T; /* window starts in [start, start + span) */
        int64_t at = start + (int64_t)nb_random_below(g, (uint64_t)span);
        memcpy(x + b * T, c->tok + at, (size_t)T * sizeof *x);
        memcpy(y + b * T, c->tok + at + 1, (size_t)T * sizeof *y);
    }
}

/* eval_batches * batch windows of T characters; main has checked that their products fit (windows_fit). */
static void make_eval_windows(corpus *c, int64_t eval_batches, int64_t batch, int64_t T, uint64_t seed)
{
    nb_generator g;
    nb_generator_seed(&g, seed);
    int64_t count = eval_batches * batch;
    int64_t *x = ex_alloc_for(program, "--eval-batches", eval_batches, 0, batch * T, sizeof *x);
    int64_t *y = ex_alloc_for(program, "--eval-batches", eval_batches, 0, batch * T, sizeof *y);
    sample_windows(c, c->val, c->n_val, count, T, &g, x, y);
    c->eval_x = nb_from_array(x, NB_SHAPE(count, T), NB_I64);
    c->eval_y = nb_from_array(y, NB_SHAPE(count, T), NB_I64);
    if (!c->eval_x || !c->eval_y) fail();
    free(x);
    free(y);
}

static void free_corpus(corpus *c)
{
    free(c->tok);
    free(c->train);
    free(c->val);
    nb_free(c->eval_x);
    nb_free(c->eval_y);
}

/* Mean cross-entropy (nats/char) of the model on the corpus's fixed validation windows, in eval mode, no graph. */
static double eval_loss(nb_module *model, const corpus *c, int64_t batch)
{
    int64_t E = nb_size(c->eval_x, 0), T = nb_size(c->eval_x, 1);
    double sum = 0;
    nb_module_train(model, false);
    nb_no_grad_begin();
    for (int64_t at = 0; at < E; at += batch) {
        int64_t n = E - at < batch ? E - at : batch;
        nb_scope_begin();
        nb_tensor *logits = nb_forward(model, nb_narrow(c->eval_x, 0, at, n));
        nb_tensor *loss = nb_cross_entropy(nb_reshape(logits, NB_SHAPE(n * T, -1)),
                                           nb_reshape(nb_narrow(c->eval_y, 0, at, n), NB_SHAPE(n * T)), NULL);
        if (!loss) fail();
        sum += nb_item(loss) * (double)n;
        nb_scope_end();
    }
    nb_no_grad_end();
    nb_module_train(model, true);
    return sum / (double)E;
}

/* Unigram and bigram models with add-one smoothing, counted on the training pieces, scored on the validation
 * windows' targets (the bigram model sees the character before each target, as the network does). */
static void baselines(const corpus *c, int64_t V, double *unigram, double *bigram)
{
    double *uni = calloc((size_t)V, sizeof *uni), *bi = calloc((size_t)(V * V), sizeof *bi);
    double *row = calloc((size_t)V, sizeof *row);
    if (!uni || !bi || !row) {
        fprintf(stderr, "%s: out of memory\n", program);
        exit(EXIT_FAILURE);
    }
    double total = 0;
    for (int64_t p = 0; p < c->n_train; p++) {
        int64_t start = c->train[p], end = piece_end(c, start);
        for (int64_t i = start; i < end; i++) {
            uni[c->tok[i]] += 1;
            total += 1;
            if (i > start) {
                bi[c->tok[i - 1] * V + c->tok[i]] += 1;
                row[c->tok[i - 1]] += 1;
            }
        }
    }
    int64_t n = nb_numel(c->eval_y);
    double su = 0, sb = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t prev = (int64_t)nb_get_flat(c->eval_x, i), next = (int64_t)nb_get_flat(c->eval_y, i);
        su -= log((uni[next] + 1) / (total + (double)V));
        sb -= log((bi[prev * V + next] + 1) / (row[prev] + (double)V));
    }
    *unigram = su / (double)n;
    *bigram = sb / (double)n;
    free(uni);
    free(bi);
    free(row);
}

/* ------------------------------------------------------------------------------------------------
 * Training
 * ---------------------------------------------------------------------------------------------- */
typedef struct train_options {
    int64_t steps, batch, context, eval_every, warmup;
    double lr;
    const char *label;
} train_options;

/* Adam over the list's trainable parameters for opt.steps steps of random training windows; lr warms up linearly
 * over opt.warmup steps, then decays along a cosine to a tenth. Every eval_every steps (and at the end) prints the
 * train loss (mean over the interval) and the validation loss of each corpus in evals. Returns the seconds spent
 * training (evaluations excluded) and the last validation loss of evals[0] in *last_val. */
static double train(nb_module *model, nb_param_list *params, const corpus *c, const train_options *o,
                    nb_generator *g, int n_evals, const corpus *const *evals, double *last_val)
{
    nb_adam_options ao = nb_adam_defaults();
    ao.lr = o->lr;
    ao.beta2 = 0.99;
    nb_optimizer *opt = nb_adam_new(params, ao);
    if (!opt) fail();
    const int64_t B = o->batch, T = o->context, every = o->eval_every > 0 ? o->eval_every : o->steps;
    int64_t rounds = every > 0 ? (o->steps + every - 1) / every : 0;
    nb_progress *progress = nb_progress_new(stderr, rounds, every, every / 4 > 0 ? every / 4 : 1);
    if (!progress) fail();
    int64_t *x = ex_alloc_for(program, "--batch", B, 0, T, sizeof *x);
    int64_t *y = ex_alloc_for(program, "--batch", B, 0, T, sizeof *y);
    double seconds = 0, interval_loss = 0;
    int64_t interval_steps = 0;
    for (int64_t step = 0; step < o->steps; step++) {
        double t0 = ex_now();
        double warm = o->warmup > 0 && step < o->warmup ? (double)(step + 1) / (double)o->warmup : 1.0;
        double decay = 0.1 + 0.9 * 0.5 * (1 + cos(M_PI * (double)step / (double)o->steps));
        nb_optimizer_set_lr(opt, o->lr * warm * decay);
        sample_windows(c, c->train, c->n_train, B, T, g, x, y);
        nb_scope_begin();
        nb_tensor *xb = nb_from_array(x, NB_SHAPE(B, T), NB_I64), *yb = nb_from_array(y, NB_SHAPE(B * T), NB_I64);
        nb_tensor *loss = nb_cross_entropy(nb_reshape(nb_forward(model, xb), NB_SHAPE(B * T, -1)), yb, NULL);
        if (!loss) fail();
        double value = nb_item(loss);
        ex_check_loss(program, value, "step", step + 1);
        nb_optimizer_zero_grad(opt);
        if (nb_backward(loss) != NB_OK) fail();
        if (isnan(nb_clip_grad_norm(params, 1.0, 2.0)) || nb_optimizer_step(opt) != NB_OK) fail();
        nb_scope_end();
        seconds += ex_now() - t0;
        interval_loss += value;
        interval_steps++;
        nb_progress_update(progress, step / every, step % every, B * T, value, NAN);
        if ((step + 1) % every == 0 || step + 1 == o->steps) {
            char extra[256];
            int len = 0;
            for (int i = 0; i < n_evals; i++) {
                double v = eval_loss(model, evals[i], B);
                if (i == 0) *last_val = v;
                len += snprintf(extra + len, sizeof extra - (size_t)len, "%sval_%s=%.4f", i ? " " : "", evals[i]->name,
                                v);
            }
            nb_progress_end_epoch(progress, extra);
            printf("%s step %lld/%lld  train %.4f  %s  (%.1f s, %.0f ms/step)\n", o->label, (long long)step + 1,
                   (long long)o->steps, interval_loss / (double)interval_steps, extra, seconds,
                   1000 * seconds / (double)(step + 1));
            fflush(stdout);
            interval_loss = 0;
            interval_steps = 0;
        }
    }
    free(x);
    free(y);
    nb_progress_free(progress);
    nb_optimizer_free(opt);
    return seconds;
}

static void print_sample(nb_module *model, const vocab *v, int64_t start_token, int64_t n, double temperature,
                         int64_t top_k, uint64_t seed)
{
    nb_generator g;
    nb_generator_seed(&g, seed);
    nb_module_train(model, false);
    nb_tensor *start = nb_from_array(&start_token, NB_SHAPE(1, 1), NB_I64);
    nb_tensor *out = nb_gpt_generate(model, start, n, temperature, top_k, &g);
    if (!out) fail();
    nb_module_train(model, true);
    char utf[4];
    printf("---\n");
    for (int64_t i = 1; i <= n; i++) fwrite(utf, 1, (size_t)encode_utf8(v->chars[(int64_t)nb_get_flat(out, i)], utf), stdout);
    printf("\n---\n");
    nb_free(start);
    nb_free(out);
}

/* Copies of every tensor of the list, to restore the pretrained weights between the two fine-tunings. */
static nb_tensor **snapshot(const nb_param_list *p)
{
    nb_tensor **copy = xmalloc((size_t)p->count * sizeof *copy);
    nb_no_grad_begin();
    for (int i = 0; i < p->count; i++)
        if (!(copy[i] = nb_clone(p->items[i].tensor))) fail();
    nb_no_grad_end();
    return copy;
}

static void restore(const nb_param_list *p, nb_tensor **copy)
{
    for (int i = 0; i < p->count; i++) {
        if (nb_copy_(p->items[i].tensor, copy[i]) != NB_OK) fail();
        nb_zero_grad(p->items[i].tensor);
    }
}

static double peak_mb(void) { return (double)nb_memory_stats_get().peak_live_bytes / 1e6; }

/* "dir/tinyshakespeare.txt" -> "tinyshakespeare", for labels. */
static const char *base_name(const char *path, char out[64])
{
    const char *slash = strrchr(path, '/');
    snprintf(out, 64, "%s", slash ? slash + 1 : path);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
    return out;
}

static int64_t meta_int(const nb_metadata *m, const char *key, int64_t fallback)
{
    const char *v = nb_metadata_get(m, key);
    return v ? atoll(v) : fallback;
}

/* The batches (--batch windows of --context characters) and the validation windows (--eval-batches such batches)
 * are counted with int64 products, and held twice (inputs and targets, as arrays and as tensors): sizes whose
 * products overflow, or whose validation windows alone exceed the machine's memory, are refused before anything is
 * allocated. The products are taken in double, which cannot overflow. */
static bool windows_fit(int64_t batch, int64_t eval_batches, int64_t context)
{
    double tokens = (double)eval_batches * (double)batch * (double)context;
    double bytes = 4 * sizeof(int64_t) * tokens, memory = ex_physical_memory();
    if (bytes < 0x1p62 && !(memory > 0 && bytes > memory)) return true;
    fprintf(stderr, "%s: --batch %lld --eval-batches %lld --context %lld are too large: %.3g validation characters "
                    "would need %.3g GB", program, (long long)batch, (long long)eval_batches, (long long)context,
            tokens, bytes / 1e9);
    if (memory > 0) fprintf(stderr, "; this machine has %.3g GB", memory / 1e9);
    fprintf(stderr, "\n");
    return false;
}

/* nb_gpt_generate holds the sampled tokens twice (int64 each): a length beyond the machine's memory is refused before
 * training rather than failing after it. */
static bool sample_fits(int64_t n)
{
    double bytes = 2 * sizeof(int64_t) * ((double)n + 1), memory = ex_physical_memory();
    if (bytes < 0x1p62 && !(memory > 0 && bytes > memory)) return true;
    fprintf(stderr, "%s: --sample %lld is too large: it would need %.3g GB", program, (long long)n, bytes / 1e9);
    if (memory > 0) fprintf(stderr, "; this machine has %.3g GB", memory / 1e9);
    fprintf(stderr, "\n");
    return false;
}

/* Whether --lora-targets names a layer of the model, tried on a GPT of the same layout but the smallest sizes:
 * nb_gpt_apply_lora would otherwise refuse the list only after pretraining and full fine-tuning. */
static bool lora_targets_match(const char *targets, bool untied)
{
    nb_gpt_config c = nb_gpt_defaults();
    c.vocab_size = 2;
    c.context = 2;
    c.n_layer = 1;
    c.n_head = 1;
    c.n_embd = 1;
    c.dropout = 0;
    c.tie_weights = !untied;
    nb_generator g;
    nb_generator_seed(&g, 0);
    nb_module *probe = nb_gpt_new(&c, &g);
    if (!probe) fail();
    int wrapped = nb_gpt_apply_lora(probe, targets, 1, 1, &g);
    nb_module_free(probe);
    if (wrapped > 0) return true;
    fprintf(stderr, "%s: --lora-targets '%s' names no layer of the model (qkv, attn.proj, mlp.fc, mlp.proj, proj%s)\n",
            program, targets, untied ? ", head" : "; head only with --untied");
    return false;
}

typedef struct finetune_result {
    double after, forget, seconds, peak;
    int64_t params;
} finetune_result;

int main(int argc, char **argv)
{
    const char *data = NULL, *text_path = NULL, *ft_path = NULL, *save = NULL, *load = NULL, *save_lora = NULL;
    const char *targets = "qkv,attn.proj";
    int64_t steps = 600, ft_steps = 200, batch = 32, context = 64, layers = 4, heads = 4, width = 128;
    int64_t eval_every = 100, eval_batches = 8, sample_len = 300, top_k = 10, seed = 42, rank = 8;
    double lr = 2e-3, ft_lr = 5e-4, lora_lr = 2e-3, alpha = 16, dropout = 0, temperature = 0.8, val_fraction = 0.1;
    bool untied = false;
    const ex_flag flags[] = {
        {"--steps", EX_INT, &steps, "pretraining steps (0 with --load: evaluate and fine-tune only)"},
        {"--finetune-steps", EX_INT, &ft_steps, "steps of each fine-tuning (full, then LoRA; 0: none)"},
        {"--batch", EX_INT, &batch, "windows per batch"},
        {"--context", EX_INT, &context, "characters per window (the model's context)"},
        {"--layers", EX_INT, &layers, "transformer blocks"},
        {"--heads", EX_INT, &heads, "attention heads"},
        {"--width", EX_INT, &width, "embedding width (a multiple of --heads)"},
        {"--dropout", EX_DOUBLE, &dropout, "dropout probability"},
        {"--untied", EX_BOOL, &untied, "separate output head instead of the token embedding"},
        {"--lr", EX_DOUBLE, &lr, "pretraining peak learning rate"},
        {"--finetune-lr", EX_DOUBLE, &ft_lr, "full fine-tuning peak learning rate"},
        {"--lora-lr", EX_DOUBLE, &lora_lr, "LoRA fine-tuning peak learning rate"},
        {"--lora-rank", EX_INT, &rank, "LoRA rank r"},
        {"--lora-alpha", EX_DOUBLE, &alpha, "LoRA alpha (the update is scaled by alpha / r)"},
        {"--lora-targets", EX_STRING, &targets, "layers LoRA wraps (qkv, attn.proj, mlp.fc, mlp.proj, proj, head)"},
        {"--eval-every", EX_INT, &eval_every, "steps between validation losses"},
        {"--eval-batches", EX_INT, &eval_batches, "validation batches (fixed windows)"},
        {"--val-fraction", EX_DOUBLE, &val_fraction, "fraction of each text held out"},
        {"--sample", EX_INT, &sample_len, "characters to sample after training (0: none)"},
        {"--temperature", EX_DOUBLE, &temperature, "sampling temperature (0: greedy)"},
        {"--top-k", EX_INT, &top_k, "sample among the k most likely characters (0: all)"},
        {"--seed", EX_INT, &seed, "seed of the weights, split, batches and samples"},
        {"--text", EX_STRING, &text_path, "pretraining text (default DIR/text/tinyshakespeare.txt)"},
        {"--finetune-text", EX_STRING, &ft_path, "fine-tuning text (default DIR/text/alice_in_wonderland.txt; '' none)"},
        {"--save", EX_STRING, &save, "write the pretrained model (and its vocabulary) to this safetensors file"},
        {"--load", EX_STRING, &load, "start from a model saved with --save"},
        {"--save-lora", EX_STRING, &save_lora, "write the LoRA adapters alone to this safetensors file"},
        {"--data", EX_STRING, &data, "data directory (default $NABLA_DATA, else ../shared/data)"},
    };
    ex_parse_flags(argc, argv, program,
                   "Pretrains a character-level GPT on one text, then fine-tunes it on another, fully and with LoRA.",
                   (int)(sizeof flags / sizeof flags[0]), flags);
    if (steps < 0 || ft_steps < 0 || batch < 1 || context < 2 || layers < 1 || heads < 1 || width < 1 ||
        width % heads || eval_batches < 1 || rank < 1 || !(val_fraction > 0 && val_fraction < 1)) {
        fprintf(stderr, "%s: invalid sizes (need --batch, --layers, --heads, --lora-rank, --eval-batches >= 1, "
                        "--context >= 2, --width a multiple of --heads, --val-fraction in (0, 1))\n", program);
        return 2;
    }
    if (!(lr > 0 && ft_lr > 0 && lora_lr > 0)) {
        fprintf(stderr, "%s: --lr, --finetune-lr and --lora-lr must be positive\n", program);
        return 2;
    }
    /* Weights, gradients and Adam's two moments beyond the machine's memory: refused up front rather than after
     * minutes of allocating layer after layer (a typo such as --layers 1000000000). The vocabulary is not known
     * yet: 256 bounds it. */
    double n_params = 12.0 * (double)layers * (double)width * (double)width + (256.0 + (double)context) * (double)width;
    double memory = ex_physical_memory();
    if (memory > 0 && n_params * 16 > memory) {
        fprintf(stderr, "%s: --layers %lld --width %lld --context %lld make a model of about %.3g parameters, which "
                        "would need %.3g GB to train; this machine has %.3g GB\n", program, (long long)layers,
                (long long)width, (long long)context, n_params, n_params * 16 / 1e9, memory / 1e9);
        return 2;
    }
    if (!windows_fit(batch, eval_batches, context)) return 2;

    /* Checked before training, which may take minutes: nb_gpt_generate would refuse them only when sampling. */
    if (!(temperature >= 0)) {
        fprintf(stderr, "%s: --temperature must be >= 0 (0: greedy), got %g\n", program, temperature);
        return 2;
    }
    if (!sample_fits(sample_len)) return 2;

    /* The texts: given paths must exist; the default ones are a skip when absent. */
    const char *dir = ex_data_dir(program, data);
    char default_text[4096], default_ft[4096];
    if (!text_path || (!ft_path && ft_steps > 0)) {
        if (!dir) {
            printf("%s: no data directory (give --data DIR, set NABLA_DATA, or give --text and --finetune-text); "
                   "skipping\n", program);
            return 77;
        }
        snprintf(default_text, sizeof default_text, "%s/text/tinyshakespeare.txt", dir);
        snprintf(default_ft, sizeof default_ft, "%s/text/alice_in_wonderland.txt", dir);
    }
    bool given_text = text_path != NULL, given_ft = ft_path != NULL;
    if (!text_path) text_path = default_text;
    if (!ft_path) ft_path = ft_steps > 0 ? default_ft : "";
    bool finetune = *ft_path && ft_steps > 0;

    /* The vocabulary and configuration of a loaded model, read first: whether the model has a head of its own,
     * which --lora-targets may name, is in its metadata. */
    nb_gpt_config config = nb_gpt_defaults();
    vocab v = {0};
    nb_metadata loaded_meta = {0};
    if (load) {
        nb_param_list *none = nb_param_list_new();
        if (!none || nb_load_safetensors(load, none, NB_LOAD_PARTIAL, NULL, &loaded_meta) != NB_OK) fail();
        nb_param_list_free(none);
        if (!vocab_from_metadata(&loaded_meta, &v)) {
            fprintf(stderr, "%s: %s has no tiny_gpt vocabulary in its metadata\n", program, load);
            free(v.chars);
            return EXIT_FAILURE;
        }
        context = meta_int(&loaded_meta, "context", context);
        layers = meta_int(&loaded_meta, "n_layer", layers);
        heads = meta_int(&loaded_meta, "n_head", heads);
        width = meta_int(&loaded_meta, "n_embd", width);
        untied = meta_int(&loaded_meta, "tie_weights", 1) == 0;
        if (!windows_fit(batch, eval_batches, context)) { /* the model's context, not the flag's */
            free(v.chars);
            return 2;
        }
    }
    if (finetune && !lora_targets_match(targets, untied)) {
        free(v.chars);
        return 2;
    }

    int64_t n_text = 0, n_ft = 0;
    uint32_t *text = read_text(text_path, &n_text), *ft_text = NULL;
    int text_errno = errno;
    if (text && finetune) ft_text = read_text(ft_path, &n_ft);
    if (!text || (finetune && !ft_text)) {
        const char *missing = !text ? text_path : ft_path;
        bool given = !text ? given_text : given_ft;
        /* A path the user gave is an error (stderr); a default one absent is a skip, reported like the others. */
        fprintf(given ? stderr : stdout, "%s: cannot read %s: %s%s\n", program, missing,
                strerror(!text ? text_errno : errno), given ? "" : "; skipping");
        free(text);
        free(v.chars);
        return given ? EXIT_FAILURE : 77;
    }
    if (!load) {
        uint32_t *texts[2] = {text, ft_text};
        int64_t lengths[2] = {n_text, n_ft};
        v = build_vocab(finetune ? 2 : 1, texts, lengths);
    }
    char pre_name[64], ft_name[64];
    corpus pre = {.name = base_name(text_path, pre_name)}, ft = {.name = base_name(ft_path, ft_name)};
    int64_t dropped = 0, dropped_ft = 0;
    pre.tok = encode(&v, text, n_text, &pre.n, &dropped);
    if (finetune) ft.tok = encode(&v, ft_text, n_ft, &ft.n, &dropped_ft);
    if (dropped + dropped_ft)
        printf("%s: %lld characters outside the loaded vocabulary were dropped\n", program,
               (long long)(dropped + dropped_ft));
    free(text);
    free(ft_text);
    split_corpus(&pre, context, val_fraction, (uint64_t)seed + 1);
    make_eval_windows(&pre, eval_batches, batch, context, (uint64_t)seed + 2);
    if (finetune) {
        split_corpus(&ft, context, val_fraction, (uint64_t)seed + 3);
        make_eval_windows(&ft, eval_batches, batch, context, (uint64_t)seed + 4);
    }
    printf("%s: %s: %lld characters (%lld training pieces of %lld, %lld held out)", program, text_path,
           (long long)pre.n, (long long)pre.n_train, (long long)pre.piece, (long long)pre.n_val);
    if (finetune)
        printf("; %s: %lld characters (%lld + %lld pieces)", ft_path, (long long)ft.n, (long long)ft.n_train,
               (long long)ft.n_val);
    printf("; vocabulary %lld characters\n", (long long)v.size);
    double unigram, bigram;
    baselines(&pre, v.size, &unigram, &bigram);
    printf("baselines on the validation windows (nats/char): unigram %.4f, bigram %.4f\n", unigram, bigram);

    /* The model */
    config.vocab_size = v.size;
    config.context = context;
    config.n_layer = layers;
    config.n_head = heads;
    config.n_embd = width;
    config.dropout = dropout;
    config.tie_weights = !untied;
    nb_generator gen;
    nb_generator_seed(&gen, (uint64_t)seed);
    nb_module *model = nb_gpt_new(&config, &gen);
    if (!model) fail();
    nb_param_list *params = nb_module_parameters(model);
    if (!params) fail();
    if (load) {
        if (nb_load_safetensors(load, params, NB_LOAD_STRICT, NULL, NULL) != NB_OK) fail();
        printf("%s: loaded %s\n", program, load);
    }
    printf("%s: GPT with %lld layers, %lld heads, width %lld, context %lld, %s head: %lld parameters\n", program,
           (long long)layers, (long long)heads, (long long)width, (long long)context, untied ? "separate" : "tied",
           (long long)nb_param_list_numel(params, true));
    const corpus *pre_only[1] = {&pre};
    double val_loss = eval_loss(model, &pre, batch), pre_seconds = 0;
    printf("before training: val_loss %.4f (uniform guessing: %.4f)\n", val_loss, log((double)v.size));

    /* Pretraining */
    if (steps > 0) {
        train_options o = {steps, batch, context, eval_every, steps / 10 < 100 ? steps / 10 : 100, lr, "pretrain"};
        pre_seconds = train(model, params, &pre, &o, &gen, 1, pre_only, &val_loss);
        printf("pretraining: %lld steps in %.1f s (%.0f ms/step, %.0f characters/s); val_loss %.4f vs unigram "
               "%.4f, bigram %.4f\n", (long long)steps, pre_seconds, 1000 * pre_seconds / (double)steps,
               (double)steps * (double)(batch * context) / pre_seconds, val_loss, unigram, bigram);
    }
    int64_t start_token = vocab_index(&v, '\n') >= 0 ? vocab_index(&v, '\n') : 0;
    if (sample_len > 0) {
        printf("sample (temperature %g, top-k %lld, seed %lld):\n", temperature, (long long)top_k, (long long)seed);
        print_sample(model, &v, start_token, sample_len, temperature, top_k, (uint64_t)seed);
    }
    if (save) {
        nb_metadata meta = {0};
        char num[32];
        vocab_to_metadata(&v, &meta);
        const char *keys[5] = {"context", "n_layer", "n_head", "n_embd", "tie_weights"};
        int64_t values[5] = {context, layers, heads, width, !untied};
        for (int i = 0; i < 5; i++) {
            snprintf(num, sizeof num, "%lld", (long long)values[i]);
            if (nb_metadata_set(&meta, keys[i], num) != NB_OK) fail();
        }
        if (nb_metadata_set(&meta, "format", "nabla tiny_gpt") != NB_OK) fail();
        if (nb_save_safetensors(save, params, &meta) != NB_OK) fail();
        printf("%s: saved the model to %s\n", program, save);
    }

    double step_ms = steps > 0 ? 1000 * pre_seconds / (double)steps : 0.0;
    if (!finetune) {
        printf("result: val_loss=%.4f unigram=%.4f bigram=%.4f pretrain_steps=%lld pretrain_s=%.1f step_ms=%.0f\n",
               val_loss, unigram, bigram, (long long)steps, pre_seconds, step_ms);
    } else {
        /* Fine-tuning, twice from the same pretrained weights */
        const corpus *both[2] = {&ft, &pre};
        double before = eval_loss(model, &ft, batch);
        double ft_unigram, ft_bigram;
        baselines(&ft, v.size, &ft_unigram, &ft_bigram);
        printf("fine-tuning text: val_loss %.4f before fine-tuning (its unigram %.4f, bigram %.4f)\n", before,
               ft_unigram, ft_bigram);
        nb_tensor **pretrained = snapshot(params);
        finetune_result full, lora;
        int64_t warm = ft_steps / 10;

        full.params = nb_param_list_numel(params, true);
        nb_reset_peak_memory();
        train_options o = {ft_steps, batch, context, eval_every, warm, ft_lr, "full"};
        full.seconds = train(model, params, &ft, &o, &gen, 2, both, &full.after);
        full.peak = peak_mb();
        full.forget = eval_loss(model, &pre, batch);
        printf("full fine-tuning: %lld trainable parameters, %.1f s, peak tensor memory %.1f MB; val_loss %.4f -> "
               "%.4f, pretraining text %.4f -> %.4f\n", (long long)full.params, full.seconds, full.peak, before,
               full.after, val_loss, full.forget);

        restore(params, pretrained);
        int wrapped = nb_gpt_apply_lora(model, targets, rank, alpha, &gen);
        if (wrapped < 0) fail();
        nb_param_list *lora_params = nb_module_parameters(model);
        if (!lora_params) fail();
        lora.params = nb_param_list_numel(lora_params, true);
        nb_reset_peak_memory();
        o = (train_options){ft_steps, batch, context, eval_every, warm, lora_lr, "lora"};
        lora.seconds = train(model, lora_params, &ft, &o, &gen, 2, both, &lora.after);
        lora.peak = peak_mb();
        lora.forget = eval_loss(model, &pre, batch);
        printf("LoRA fine-tuning (rank %lld, alpha %g, %d layers: %s): %lld trainable parameters, %.1f s, peak "
               "tensor memory %.1f MB; val_loss %.4f -> %.4f, pretraining text %.4f -> %.4f\n", (long long)rank,
               alpha, wrapped, targets, (long long)lora.params, lora.seconds, lora.peak, before, lora.after,
               val_loss, lora.forget);
        if (save_lora) {
            nb_metadata meta = {0};
            char num[32];
            snprintf(num, sizeof num, "%lld", (long long)rank);
            nb_metadata_set(&meta, "lora.rank", num);
            snprintf(num, sizeof num, "%g", alpha);
            nb_metadata_set(&meta, "lora.alpha", num);
            if (nb_metadata_set(&meta, "lora.targets", targets) != NB_OK || nb_lora_save(save_lora, model, &meta))
                fail();
            printf("%s: saved the LoRA adapters to %s\n", program, save_lora);
        }
        if (nb_gpt_merge_lora(model, true) < 0) fail();
        double merged = eval_loss(model, &ft, batch);
        printf("LoRA merged into the weights: val_loss %.4f (unmerged %.4f)\n", merged, lora.after);
        if (sample_len > 0) {
            printf("sample after LoRA fine-tuning:\n");
            print_sample(model, &v, start_token, sample_len, temperature, top_k, (uint64_t)seed);
        }
        printf("result: val_loss=%.4f unigram=%.4f bigram=%.4f pretrain_steps=%lld pretrain_s=%.1f step_ms=%.0f "
               "ft_before=%.4f full_after=%.4f full_forget=%.4f full_params=%lld full_peak_mb=%.1f full_s=%.1f "
               "lora_after=%.4f lora_forget=%.4f lora_params=%lld lora_peak_mb=%.1f lora_s=%.1f lora_merged=%.4f\n",
               val_loss, unigram, bigram, (long long)steps, pre_seconds, step_ms, before, full.after, full.forget,
               (long long)full.params, full.peak, full.seconds, lora.after, lora.forget, (long long)lora.params,
               lora.peak, lora.seconds, merged);
        for (int i = 0; i < params->count; i++) nb_free(pretrained[i]);
        free(pretrained);
        nb_param_list_free(lora_params);
        free_corpus(&ft);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) printf("%s: peak resident memory %.1f MB\n", program, ru.ru_maxrss / 1024.0);

    nb_param_list_free(params);
    nb_module_free(model);
    free_corpus(&pre);
    free(v.chars);
    return 0;
}
