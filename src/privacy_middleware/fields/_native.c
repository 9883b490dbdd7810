/* One pass over a JSON response for the common disclosure case: parse, select, drop/keep, dump.

   fields/native.py builds a program from a DisclosurePlan (plain key paths grouped by parent
   object, every transform drop or keep) and calls `disclose(program, body)`. The result is the
   bytes orjson.dumps(...) would give after FieldEngine.disclose, with the figures of its report;
   or None for anything this code does not handle exactly (an escaped, duplicated, case-variant or
   non-ASCII key where rules apply, an unknown key in a personal object, a value of an unexpected
   type, a suspect kept value, a number or escape orjson would write differently, invalid JSON),
   and then the pure-Python path runs. No crypto here; every read and write is bounds-checked. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <strings.h>

#define MAX_DEPTH 64 /* deeper: None (orjson and the Python path decide) */
#define MAX_KEYS 64  /* members of one object checked for duplicates; more: None */

enum { K_COPY = 0, K_DROP = 1, K_KEEP = 2, K_OBJECT = 3, K_ITEMS = 4 };
enum { OK = 0, BAIL = 1, ERROR = -1 };

typedef struct {
    const char *key;
    Py_ssize_t len;
    int kind;
    int arg;     /* K_KEEP: the rule's index; K_OBJECT, K_ITEMS: the node's index */
    int subject; /* the value is the record's subject */
} Entry;

typedef struct {
    Entry *entries;
    int count;
    int personal; /* a key no entry names: None */
    int record;   /* the object is a record (report figures per record) */
} Node;

typedef struct {
    PyObject *spec; /* keeps the key bytes alive */
    Node *nodes;
    int n_nodes;
    int n_rules;
    const char **needles; /* kept strings starting (prefixes) or ending (suffixes) with these: None */
    Py_ssize_t *needle_lens;
    int n_prefixes, n_needles;
} Program;

typedef struct {
    const unsigned char *p, *end;
    char *out;
    Py_ssize_t n, cap;
    const Program *prog;
    long kept, dropped, record_kept;
    char *seen;          /* per rule: a kept value of its category was present */
    PyObject *subject;   /* the current record's subject (new reference) or NULL */
    PyObject *subjects;  /* per record: its subject or None */
    PyObject *kept_subjects;
    int max_depth; /* deeper containers: BAIL */
} State;

static int value(State *s, int depth, int emit);
static int object(State *s, const Node *node, int depth, int emit);

static void ws(State *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int put(State *s, const void *data, Py_ssize_t len, int emit) {
    if (!emit)
        return OK;
    if (len > s->cap - s->n)
        return BAIL; /* never happens (the output is never longer than the input); checked anyway */
    memcpy(s->out + s->n, data, (size_t)len);
    s->n += len;
    return OK;
}

static int is_hex_lower(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

/* A string at s->p ('"'): valid UTF-8, escapes only as orjson writes them. Sets the span (with its
   quotes) and whether it holds an escape. */
static int string(State *s, const unsigned char **start, Py_ssize_t *len, int *escaped) {
    const unsigned char *p = s->p + 1, *end = s->end;
    *escaped = 0;
    while (p < end) {
        unsigned char c = *p;
        if (c == '"') {
            *start = s->p;
            *len = p + 1 - s->p;
            s->p = p + 1;
            return OK;
        }
        if (c == '\\') {
            if (end - p < 2)
                return BAIL;
            unsigned char e = p[1];
            *escaped = 1;
            if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
                p += 2;
                continue;
            }
            /* \u00XX for a control character orjson writes that way (not \b \t \n \f \r) */
            if (e != 'u' || end - p < 6 || p[2] != '0' || p[3] != '0' || (p[4] != '0' && p[4] != '1') ||
                !is_hex_lower(p[5]))
                return BAIL;
            int code = (p[4] - '0') * 16 + (p[5] <= '9' ? p[5] - '0' : p[5] - 'a' + 10);
            if (code == 8 || code == 9 || code == 10 || code == 12 || code == 13)
                return BAIL;
            p += 6;
            continue;
        }
        if (c < 0x20)
            return BAIL; /* a raw control character: invalid JSON */
        if (c < 0x80) {
            p++;
            continue;
        }
        /* UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF */
        int more;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            more = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else
            return BAIL;
        if (end - p <= more)
            return BAIL;
        if (p[1] < lo || p[1] > hi)
            return BAIL;
        for (int i = 2; i <= more; i++)
            if (p[i] < 0x80 || p[i] > 0xBF)
                return BAIL;
        p += 1 + more;
    }
    return BAIL;
}

/* A number written as orjson writes it back: an integer of at most 18 digits (not -0), or a decimal
   of at most 15 digits without exponent, trailing zero or more than four leading fraction zeros. */
static int number(State *s, int *is_int) {
    const unsigned char *p = s->p, *end = s->end;
    if (p < end && *p == '-')
        p++;
    const unsigned char *digits = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    Py_ssize_t int_len = p - digits;
    if (int_len == 0 || int_len > 18 || (int_len > 1 && digits[0] == '0'))
        return BAIL;
    *is_int = 1;
    if (p < end && *p == '.') {
        const unsigned char *frac = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        Py_ssize_t frac_len = p - frac;
        if (frac_len == 0 || (frac_len > 1 && p[-1] == '0'))
            return BAIL;
        Py_ssize_t significant = (int_len == 1 && digits[0] == '0') ? 0 : int_len;
        if (significant + frac_len > 15)
            return BAIL;
        if (significant == 0 && !(frac_len == 1 && frac[0] == '0')) {
            Py_ssize_t zeros = 0;
            while (zeros < frac_len && frac[zeros] == '0')
                zeros++;
            if (zeros > 4)
                return BAIL;
        }
        *is_int = 0;
    } else if (int_len == 1 && digits[0] == '0' && digits != s->p) {
        return BAIL; /* -0: orjson writes 0 */
    }
    if (p < end && (*p == 'e' || *p == 'E' || *p == '.' || (*p >= '0' && *p <= '9')))
        return BAIL;
    s->p = p;
    return OK;
}

static int literal(State *s, const char *word, Py_ssize_t len, int emit) {
    if (s->end - s->p < len || memcmp(s->p, word, (size_t)len) != 0)
        return BAIL;
    s->p += len;
    return put(s, word, len, emit);
}

static int array(State *s, const Node *record, int depth, int emit) {
    if (depth > s->max_depth)
        return BAIL;
    s->p++;
    int rc = put(s, "[", 1, emit);
    if (rc)
        return rc;
    ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return put(s, "]", 1, emit);
    }
    for (int first = 1;; first = 0) {
        ws(s);
        if (!first && (rc = put(s, ",", 1, emit)))
            return rc;
        if (record == NULL) {
            rc = value(s, depth + 1, emit);
        } else if (s->p < s->end && *s->p == '{') {
            rc = object(s, record, depth + 1, emit);
        } else {
            rc = BAIL; /* a record that is not an object */
        }
        if (rc)
            return rc;
        ws(s);
        if (s->p >= s->end)
            return BAIL;
        if (*s->p == ']') {
            s->p++;
            return put(s, "]", 1, emit);
        }
        if (*s->p != ',')
            return BAIL;
        s->p++;
    }
}

static int value(State *s, int depth, int emit) {
    if (s->p >= s->end)
        return BAIL;
    const unsigned char *start;
    Py_ssize_t len;
    int escaped, is_int, rc;
    switch (*s->p) {
    case '{':
        return object(s, NULL, depth, emit);
    case '[':
        return array(s, NULL, depth, emit);
    case '"':
        if ((rc = string(s, &start, &len, &escaped)))
            return rc;
        return put(s, start, len, emit);
    case 't':
        return literal(s, "true", 4, emit);
    case 'f':
        return literal(s, "false", 5, emit);
    case 'n':
        return literal(s, "null", 4, emit);
    default:
        start = s->p;
        if ((rc = number(s, &is_int)))
            return rc;
        return put(s, start, s->p - start, emit);
    }
}

static const Entry *find(const Node *node, const unsigned char *key, Py_ssize_t len) {
    for (int i = 0; i < node->count; i++) {
        const Entry *e = &node->entries[i];
        if (e->len == len && memcmp(e->key, key, (size_t)len) == 0)
            return e;
    }
    return NULL;
}

/* A key no entry names, in an object where rules apply: None when it differs from an entry only by
   case, or is not ASCII (another Unicode form of a key). */
static int variant(const Node *node, const unsigned char *key, Py_ssize_t len) {
    for (Py_ssize_t i = 0; i < len; i++)
        if (key[i] >= 0x80)
            return 1;
    for (int i = 0; i < node->count; i++) {
        const Entry *e = &node->entries[i];
        if (e->len == len && strncasecmp(e->key, (const char *)key, (size_t)len) == 0)
            return 1;
    }
    return 0;
}

static int suspect(const Program *prog, const unsigned char *text, Py_ssize_t len) {
    for (int i = 0; i < prog->n_needles; i++) {
        Py_ssize_t n = prog->needle_lens[i];
        if (n > len)
            continue;
        const unsigned char *at = i < prog->n_prefixes ? text : text + len - n;
        if (memcmp(at, prog->needles[i], (size_t)n) == 0)
            return 1;
    }
    return 0;
}

/* The record's subject from its value's span: text without escapes, an integer; None for null, an
   object or a list. Anything else (true, a decimal, an escaped string): None for the whole call. */
static int take_subject(State *s, const unsigned char *start, Py_ssize_t len) {
    PyObject *subject = NULL;
    if (*start == '"') {
        if (memchr(start, '\\', (size_t)len))
            return BAIL;
        subject = PyUnicode_DecodeUTF8((const char *)start + 1, len - 2, "strict");
        if (subject == NULL)
            return ERROR;
    } else if (*start == '-' || (*start >= '0' && *start <= '9')) {
        if (memchr(start, '.', (size_t)len))
            return BAIL;
        subject = PyUnicode_DecodeASCII((const char *)start, len, "strict");
        if (subject == NULL)
            return ERROR;
    } else if (*start == 't' || *start == 'f') {
        return BAIL;
    }
    Py_XSETREF(s->subject, subject);
    return OK;
}

static int member(State *s, const Entry *entry, int depth, int emit) {
    const unsigned char *start = s->p;
    int rc, escaped;
    Py_ssize_t len;
    switch (entry ? entry->kind : K_COPY) {
    case K_COPY:
        rc = value(s, depth, emit);
        break;
    case K_DROP:
        rc = value(s, depth, 0);
        s->dropped++;
        break;
    case K_KEEP:
        if (s->p < s->end && *s->p == '"') {
            if ((rc = string(s, &start, &len, &escaped)))
                return rc;
            if (suspect(s->prog, start + 1, len - 2))
                return BAIL; /* an envelope, a token: the Python path reveals or checks it */
            rc = put(s, start, len, emit);
        } else {
            rc = value(s, depth, emit);
        }
        if (s->p - start != 4 || memcmp(start, "null", 4) != 0) {
            s->record_kept++;
            s->seen[entry->arg] = 1;
        }
        break;
    default: /* K_OBJECT, K_ITEMS: an object or a list is expected (null is left as it is) */
        if (s->p < s->end && *s->p == 'n') {
            rc = literal(s, "null", 4, emit);
        } else if (entry->kind == K_OBJECT && s->p < s->end && *s->p == '{') {
            rc = object(s, &s->prog->nodes[entry->arg], depth, emit);
        } else if (entry->kind == K_ITEMS && s->p < s->end && *s->p == '[') {
            rc = array(s, &s->prog->nodes[entry->arg], depth, emit);
        } else {
            rc = BAIL;
        }
    }
    if (rc == OK && entry && entry->subject)
        rc = take_subject(s, start, s->p - start);
    return rc;
}

static int end_record(State *s) {
    PyObject *subject = s->subject ? s->subject : Py_None;
    if (PyList_Append(s->subjects, subject) < 0)
        return ERROR;
    if (s->record_kept && s->subject && PyUnicode_GET_LENGTH(s->subject) > 0 &&
        PyList_Append(s->kept_subjects, s->subject) < 0)
        return ERROR;
    s->kept += s->record_kept;
    s->record_kept = 0;
    Py_CLEAR(s->subject);
    return OK;
}

/* An object at s->p ('{'); `node`: the rules that apply to its members (NULL: copied as it is). */
static int object(State *s, const Node *node, int depth, int emit) {
    const unsigned char *keys[MAX_KEYS];
    Py_ssize_t lens[MAX_KEYS];
    int n_keys = 0, emitted = 0, rc;
    if (depth > s->max_depth)
        return BAIL;
    if (node && node->record) {
        s->record_kept = 0;
        Py_CLEAR(s->subject);
    }
    s->p++;
    if ((rc = put(s, "{", 1, emit)))
        return rc;
    ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
    } else {
        for (;;) {
            const unsigned char *key;
            Py_ssize_t len;
            int escaped;
            ws(s);
            if (s->p >= s->end || *s->p != '"')
                return BAIL;
            if ((rc = string(s, &key, &len, &escaped)))
                return rc;
            if (escaped || n_keys == MAX_KEYS)
                return BAIL;
            for (int i = 0; i < n_keys; i++)
                if (lens[i] == len && memcmp(keys[i], key, (size_t)len) == 0)
                    return BAIL; /* a duplicated key */
            keys[n_keys] = key;
            lens[n_keys++] = len;
            ws(s);
            if (s->p >= s->end || *s->p != ':')
                return BAIL;
            s->p++;
            ws(s);
            const Entry *entry = node ? find(node, key + 1, len - 2) : NULL;
            if (node && !entry && (node->personal || variant(node, key + 1, len - 2)))
                return BAIL;
            int shown = emit && !(entry && entry->kind == K_DROP);
            if (shown) {
                if (emitted && (rc = put(s, ",", 1, 1)))
                    return rc;
                if ((rc = put(s, key, len, 1)) || (rc = put(s, ":", 1, 1)))
                    return rc;
                emitted = 1;
            }
            if ((rc = member(s, entry, depth + 1, emit)))
                return rc;
            ws(s);
            if (s->p >= s->end)
                return BAIL;
            if (*s->p == '}') {
                s->p++;
                break;
            }
            if (*s->p != ',')
                return BAIL;
            s->p++;
        }
    }
    if ((rc = put(s, "}", 1, emit)))
        return rc;
    return node && node->record ? end_record(s) : OK;
}

/* --- the program: built once per plan and recipient ---------------------------------------- */

static void program_free(PyObject *capsule) {
    Program *prog = PyCapsule_GetPointer(capsule, "privacy_middleware.disclosure");
    if (prog == NULL)
        return;
    for (int i = 0; i < prog->n_nodes; i++)
        PyMem_Free(prog->nodes[i].entries);
    PyMem_Free(prog->nodes);
    PyMem_Free(prog->needles);
    PyMem_Free(prog->needle_lens);
    Py_XDECREF(prog->spec);
    PyMem_Free(prog);
}

static int bytes_item(PyObject *item, const char **data, Py_ssize_t *len) {
    if (!PyBytes_Check(item)) {
        PyErr_SetString(PyExc_TypeError, "expected bytes");
        return -1;
    }
    *data = PyBytes_AS_STRING(item);
    *len = PyBytes_GET_SIZE(item);
    return 0;
}

/* compile((nodes, n_rules, prefixes, suffixes)): nodes[0] is the document's root; a node is
   (personal, record, ((key, kind, arg, subject), ...)); prefixes and suffixes are tuples of bytes. */
static PyObject *compile(PyObject *self, PyObject *spec) {
    PyObject *nodes, *prefixes, *suffixes;
    int n_rules;
    if (!PyArg_ParseTuple(spec, "O!iO!O!", &PyTuple_Type, &nodes, &n_rules, &PyTuple_Type, &prefixes, &PyTuple_Type,
                          &suffixes))
        return NULL;
    Program *prog = PyMem_Calloc(1, sizeof(Program));
    if (prog == NULL)
        return PyErr_NoMemory();
    Py_INCREF(spec);
    prog->spec = spec;
    prog->n_rules = n_rules;
    PyObject *capsule = PyCapsule_New(prog, "privacy_middleware.disclosure", program_free);
    if (capsule == NULL) {
        Py_DECREF(spec);
        PyMem_Free(prog);
        return NULL;
    }
    Py_ssize_t n_nodes = PyTuple_GET_SIZE(nodes);
    Py_ssize_t n_needles = PyTuple_GET_SIZE(prefixes) + PyTuple_GET_SIZE(suffixes);
    if (n_nodes < 1 || n_nodes > 4096 || n_rules < 0 || n_rules > 4096 || n_needles > 64) {
        PyErr_SetString(PyExc_ValueError, "program out of bounds");
        goto fail;
    }
    prog->nodes = PyMem_Calloc((size_t)n_nodes, sizeof(Node));
    prog->needles = PyMem_Calloc((size_t)n_needles + 1, sizeof(char *));
    prog->needle_lens = PyMem_Calloc((size_t)n_needles + 1, sizeof(Py_ssize_t));
    if (prog->nodes == NULL || prog->needles == NULL || prog->needle_lens == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    prog->n_nodes = (int)n_nodes;
    for (Py_ssize_t i = 0; i < n_needles; i++) {
        PyObject *tuple = i < PyTuple_GET_SIZE(prefixes) ? prefixes : suffixes;
        Py_ssize_t at = i < PyTuple_GET_SIZE(prefixes) ? i : i - PyTuple_GET_SIZE(prefixes);
        if (bytes_item(PyTuple_GET_ITEM(tuple, at), &prog->needles[i], &prog->needle_lens[i]) < 0)
            goto fail;
    }
    prog->n_prefixes = (int)PyTuple_GET_SIZE(prefixes);
    prog->n_needles = (int)n_needles;
    for (Py_ssize_t i = 0; i < n_nodes; i++) {
        PyObject *entries;
        int personal, record;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(nodes, i), "ppO!", &personal, &record, &PyTuple_Type, &entries))
            goto fail;
        Node *node = &prog->nodes[i];
        node->personal = personal;
        node->record = record;
        node->count = (int)PyTuple_GET_SIZE(entries);
        node->entries = PyMem_Calloc((size_t)node->count + 1, sizeof(Entry));
        if (node->entries == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        for (int j = 0; j < node->count; j++) {
            Entry *e = &node->entries[j];
            PyObject *key;
            if (!PyArg_ParseTuple(PyTuple_GET_ITEM(entries, j), "Oiip", &key, &e->kind, &e->arg, &e->subject) ||
                bytes_item(key, &e->key, &e->len) < 0)
                goto fail;
            int bad = e->kind < K_COPY || e->kind > K_ITEMS ||
                      (e->kind == K_KEEP && (e->arg < 0 || e->arg >= n_rules)) ||
                      ((e->kind == K_OBJECT || e->kind == K_ITEMS) && (e->arg <= i || e->arg >= n_nodes));
            if (bad) {
                PyErr_SetString(PyExc_ValueError, "program entry out of bounds");
                goto fail;
            }
        }
    }
    return capsule;
fail:
    Py_DECREF(capsule);
    return NULL;
}

/* disclose(program, body) -> (out, kept, dropped, seen, subjects, kept_subjects) or None */
static PyObject *disclose(PyObject *self, PyObject *args) {
    PyObject *capsule;
    Py_buffer body;
    if (!PyArg_ParseTuple(args, "Oy*", &capsule, &body))
        return NULL;
    const Program *prog = PyCapsule_GetPointer(capsule, "privacy_middleware.disclosure");
    PyObject *out = NULL, *seen = NULL, *result = NULL;
    State s = {0};
    if (prog == NULL)
        goto done;
    out = PyBytes_FromStringAndSize(NULL, body.len);
    seen = PyBytes_FromStringAndSize(NULL, prog->n_rules);
    s.subjects = PyList_New(0);
    s.kept_subjects = PyList_New(0);
    if (out == NULL || seen == NULL || s.subjects == NULL || s.kept_subjects == NULL)
        goto done;
    s.p = body.buf;
    s.end = s.p + body.len;
    s.out = PyBytes_AS_STRING(out);
    s.cap = body.len;
    s.prog = prog;
    s.seen = PyBytes_AS_STRING(seen);
    s.max_depth = MAX_DEPTH;
    memset(s.seen, 0, (size_t)prog->n_rules);
    ws(&s);
    int rc = s.p < s.end && *s.p == '{' ? object(&s, &prog->nodes[0], 0, 1) : BAIL;
    ws(&s);
    if (rc == OK && s.p != s.end)
        rc = BAIL; /* anything after the document */
    if (rc == ERROR)
        goto done;
    if (rc == BAIL) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (_PyBytes_Resize(&out, s.n) < 0)
        goto done;
    result = Py_BuildValue("(OllOOO)", out, s.kept, s.dropped, seen, s.subjects, s.kept_subjects);
done:
    Py_XDECREF(s.subject);
    Py_XDECREF(s.subjects);
    Py_XDECREF(s.kept_subjects);
    Py_XDECREF(out);
    Py_XDECREF(seen);
    PyBuffer_Release(&body);
    return result;
}

/* The strict reader's verdict (asgi/strict_json.py) on a body orjson has already parsed, in one
   pass of the parser above with nothing written: 1 when the whole body reads here with no key twice
   in one object (keys compared as their raw bytes: an escaped key, or more than MAX_KEYS members,
   is not read here) and no container nested past `max_depth` (the outermost is level 1); 0 when
   that is not certain (anything this parser does not read exactly), and the Python checks decide. */
static PyObject *strict_verdict(PyObject *self, PyObject *args) {
    Py_buffer body;
    int max_depth;
    if (!PyArg_ParseTuple(args, "y*i", &body, &max_depth))
        return NULL;
    if (max_depth > MAX_DEPTH) { /* the recursion here stays shallow: deeper limits are Python's */
        PyBuffer_Release(&body);
        Py_RETURN_FALSE;
    }
    State s = {0};
    s.p = body.buf;
    s.end = s.p + body.len;
    s.max_depth = max_depth;
    ws(&s);
    int rc = value(&s, 1, 0);
    ws(&s);
    if (rc == OK && s.p != s.end)
        rc = BAIL; /* anything after the document */
    Py_XDECREF(s.subject);
    PyBuffer_Release(&body);
    if (rc == ERROR)
        return NULL;
    return PyBool_FromLong(rc == OK);
}

/* The card-number prefilter of fields/card_sentinel.py in one pass, without the translated copy:
   `_DIGIT_RUN in body.translate(_FOLD, _DROP)` is a run of 13 ASCII digits with only the dropped
   bytes (space, dash, underscore, dot, backslash, u, U) between them. Answers 1 for such a run; else
   2 when the body holds a byte above 0x7f (the caller reads it as its parser would, Unicode digits
   included), else 0. The scan stops at the first run: the answer is 1 whatever follows. */
static PyObject *digit_run(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *p = (const unsigned char *)view.buf, *end = p + view.len;
    int run = 0, high = 0;
    long answer = 0;
    for (; p < end; p++) {
        unsigned char c = *p;
        if (c >= '0' && c <= '9') {
            if (++run >= 13) {
                answer = 1;
                break;
            }
        } else if (c == ' ' || c == '-' || c == '_' || c == '.' || c == '\\' || c == 'u' || c == 'U') {
            continue;
        } else {
            run = 0;
            high |= c & 0x80;
        }
    }
    if (!answer && high) answer = 2;
    PyBuffer_Release(&view);
    return PyLong_FromLong(answer);
}

/* The first value of each of `names` (lower-case bytes) in an ASGI header list, names compared
   without ASCII case (as bytes.lower(), whatever the C locale), as a tuple in the order of `names`
   (None for a name not there). None when the headers are not a list or a tuple, or an item is not a
   pair of bytes: the caller's Python scan (asgi/headers.py `_first_values_py`) then answers. */
static int ascii_name_equal(const char *name, Py_ssize_t len, const char *lower, Py_ssize_t lower_len) {
    if (len != lower_len) return 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c + 32);
        if (c != (unsigned char)lower[i]) return 0;
    }
    return 1;
}

#define MAX_NAMES 8

static PyObject *first_values(PyObject *self, PyObject *args) {
    PyObject *headers, *names;
    if (!PyArg_ParseTuple(args, "OO!", &headers, &PyTuple_Type, &names)) return NULL;
    Py_ssize_t n_names = PyTuple_GET_SIZE(names);
    if (n_names > MAX_NAMES) Py_RETURN_NONE;
    PyObject *found[MAX_NAMES] = {NULL};
    for (Py_ssize_t j = 0; j < n_names; j++)
        if (!PyBytes_Check(PyTuple_GET_ITEM(names, j))) Py_RETURN_NONE;
    if (!PyList_Check(headers) && !PyTuple_Check(headers)) Py_RETURN_NONE; /* never consume an iterator */
    PyObject *fast = PySequence_Fast(headers, "headers must be a sequence");
    if (fast == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(item, 0)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(item, 1))) {
            Py_DECREF(fast);
            Py_RETURN_NONE;
        }
        PyObject *key = PyTuple_GET_ITEM(item, 0);
        const char *k = PyBytes_AS_STRING(key);
        Py_ssize_t len = PyBytes_GET_SIZE(key);
        for (Py_ssize_t j = 0; j < n_names; j++) {
            PyObject *name = PyTuple_GET_ITEM(names, j);
            if (found[j] == NULL && ascii_name_equal(k, len, PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name))) {
                found[j] = PyTuple_GET_ITEM(item, 1);
                break;
            }
        }
    }
    PyObject *result = PyTuple_New(n_names);
    if (result != NULL) {
        for (Py_ssize_t j = 0; j < n_names; j++) {
            PyObject *value = found[j] != NULL ? found[j] : Py_None;
            Py_INCREF(value);
            PyTuple_SET_ITEM(result, j, value);
        }
    }
    Py_DECREF(fast);
    return result;
}

static PyMethodDef methods[] = {
    {"compile", compile, METH_O, "A disclosure program from its node table."},
    {"disclose", disclose, METH_VARARGS, "The disclosed body and its report figures, or None."},
    {"strict_verdict", strict_verdict, METH_VARARGS, "1: no duplicate key, depth within; 0: not certain."},
    {"first_values", first_values, METH_VARARGS, "The first value of each header name, or None: see asgi/headers.py."},
    {"digit_run", digit_run, METH_O, "1: a run of 13 digits (card prefilter); 2: none, not ASCII; 0: none."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
