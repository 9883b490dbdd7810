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
#include <stddef.h>
#include <structmember.h>
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
/* Each byte's class for digit_scan: a digit, a byte the fold drops, a byte above 0x7f, any other. */
enum { DS_OTHER = 0, DS_DIGIT = 1, DS_DROPPED = 2, DS_HIGH = 3 };
static unsigned char digit_classes[256];

static void digit_classes_init(void) {
    for (int c = 0; c < 256; c++) digit_classes[c] = c >= 0x80 ? DS_HIGH : DS_OTHER;
    for (int c = '0'; c <= '9'; c++) digit_classes[c] = DS_DIGIT;
    const char *dropped = " -_.\\uU";
    for (const char *d = dropped; *d; d++) digit_classes[(unsigned char)*d] = DS_DROPPED;
}

static long digit_scan(const unsigned char *p, const unsigned char *end) {
    int run = 0, high = 0;
    for (; p < end; p++) {
        switch (digit_classes[*p]) {
        case DS_OTHER:
            run = 0;
            break;
        case DS_DIGIT:
            if (++run >= 13) return 1;
            break;
        case DS_DROPPED:
            break;
        default:
            run = 0;
            high = 1;
        }
    }
    return high ? 2 : 0;
}

static PyObject *digit_run(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *p = (const unsigned char *)view.buf;
    long answer = digit_scan(p, p + view.len);
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

/* The scan of `first_values`: 1 with found[j] the first value (borrowed: the list or tuple holds it
   while the caller does) of names[j], or NULL; 0 when the headers are not a list or a tuple of
   pairs of bytes (nothing read from anything else: a one-shot iterable stays whole). */
static int scan_headers(PyObject *headers, PyObject *names, Py_ssize_t n_names, PyObject **found) {
    if (!PyList_Check(headers) && !PyTuple_Check(headers)) return 0; /* never consume an iterator */
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    PyObject **items = PySequence_Fast_ITEMS(headers);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(item, 0)) ||
            !PyBytes_Check(PyTuple_GET_ITEM(item, 1)))
            return 0;
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
    return 1;
}

static PyObject *first_values(PyObject *self, PyObject *args) {
    PyObject *headers, *names;
    if (!PyArg_ParseTuple(args, "OO!", &headers, &PyTuple_Type, &names)) return NULL;
    Py_ssize_t n_names = PyTuple_GET_SIZE(names);
    if (n_names > MAX_NAMES) Py_RETURN_NONE;
    PyObject *found[MAX_NAMES] = {NULL};
    for (Py_ssize_t j = 0; j < n_names; j++)
        if (!PyBytes_Check(PyTuple_GET_ITEM(names, j))) Py_RETURN_NONE;
    if (!scan_headers(headers, names, n_names, found)) Py_RETURN_NONE;
    PyObject *result = PyTuple_New(n_names);
    if (result != NULL) {
        for (Py_ssize_t j = 0; j < n_names; j++) {
            PyObject *value = found[j] != NULL ? found[j] : Py_None;
            Py_INCREF(value);
            PyTuple_SET_ITEM(result, j, value);
        }
    }
    return result;
}


/* ---- The response card guard's common case (asgi/card_responses.py `MaskingResponse`) ----------

   `card_send(config, scope, send)` gives a `send` for one response on a route without a plan; config
   is (json_types, resume): the guard's verdicts per Content-Type value (True: JSON) and a Python
   callable `resume(scope, send, start)` that gives the Python guard's `send` (`start` None: the
   response has not started; else the held start of a JSON answer, waiting for its first body).

   Decided here, as the Python guard decides them: a start with status 204 or 304, or answering a
   HEAD, or without a Content-Type, or whose Content-Type the table names not JSON, goes on at once
   and every later message with it; a start whose Content-Type the table names JSON, without a
   Content-Encoding, is held; its first body, when it is bytes, whole (no more_body) and the
   prefilter finds no run of 13 digits and no byte above 0x7f in it, goes on after the held start
   through one awaitable that awaits the two sends in turn (the CardSend itself, driven as a `Chain`
   is), and every later message with them. Anything else (another status, a coding, a Content-Type
   not in the table, headers that are not a list or tuple of byte pairs, a body that needs a parse, a
   message out of order, a message that is not a dict) goes to the Python guard, from then on for
   every message of the response. */

/* The sends an awaitable drives in turn. Both awaitable types (`Chain`, and `CardSend`, which is the
   awaitable of its own held start and first body) keep it first after the object header, so one set
   of awaitable methods serves both (`SENDS`). */
typedef struct {
    PyObject *send;        /* the server's send (NULL until there is something to send) */
    PyObject *messages[2]; /* still to send, in order */
    int count, next;
    PyObject *current; /* the awaitable iterator of the send in flight */
} Sends;

typedef struct {
    PyObject_HEAD
    Sends s;
} Chain;

#define SENDS(o) ((Sends *)((char *)(o) + offsetof(Chain, s)))

static PyTypeObject ChainType;

/* Arm `c` (empty) with the send and up to two messages (new references taken). */
static void sends_arm(Sends *c, PyObject *send, PyObject *first, PyObject *second) {
    Py_XINCREF(send);
    c->send = send;
    c->count = 0;
    c->next = 0;
    c->messages[0] = c->messages[1] = NULL;
    if (first != NULL) {
        Py_INCREF(first);
        c->messages[c->count++] = first;
    }
    if (second != NULL) {
        Py_INCREF(second);
        c->messages[c->count++] = second;
    }
    c->current = NULL;
}

static PyObject *chain_new(PyObject *send, PyObject *first, PyObject *second) {
    Chain *c = PyObject_GC_New(Chain, &ChainType);
    if (c == NULL) return NULL;
    sends_arm(&c->s, send, first, second);
    PyObject_GC_Track(c);
    return (PyObject *)c;
}

static int sends_traverse(Sends *c, visitproc visit, void *arg) {
    Py_VISIT(c->send);
    Py_VISIT(c->messages[0]);
    Py_VISIT(c->messages[1]);
    Py_VISIT(c->current);
    return 0;
}

static void sends_clear(Sends *c) {
    Py_CLEAR(c->send);
    Py_CLEAR(c->messages[0]);
    Py_CLEAR(c->messages[1]);
    Py_CLEAR(c->current);
    c->next = c->count;
}

static int chain_traverse(Chain *c, visitproc visit, void *arg) { return sends_traverse(&c->s, visit, arg); }

static int chain_clear(Chain *c) {
    sends_clear(&c->s);
    return 0;
}

static void chain_dealloc(Chain *c) {
    PyObject_GC_UnTrack(c);
    chain_clear(c);
    PyObject_GC_Del(c);
}

/* What `await x` awaits for x: a coroutine itself, else what its __await__ gives (an iterator). */
static PyObject *awaitable_iter(PyObject *o) {
    if (PyCoro_CheckExact(o)) {
        Py_INCREF(o);
        return o;
    }
    PyAsyncMethods *am = Py_TYPE(o)->tp_as_async;
    if (am != NULL && am->am_await != NULL) {
        PyObject *it = am->am_await(o);
        if (it == NULL) return NULL;
        if (PyCoro_CheckExact(it) || !PyIter_Check(it)) {
            PyErr_Format(PyExc_TypeError, "__await__() returned non-iterator of type '%.100s'", Py_TYPE(it)->tp_name);
            Py_DECREF(it);
            return NULL;
        }
        return it;
    }
    PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression", Py_TYPE(o)->tp_name);
    return NULL;
}

/* Drive the sends on: the next value to yield (PYGEN_NEXT), or done (PYGEN_RETURN, *result None),
   or an error (PYGEN_ERROR, exception set; the messages not yet sent are dropped). `value` is what
   the awaiting task sent in (None but for the first resumption of an inner send). */
static PySendResult chain_step(Sends *c, PyObject *value, PyObject **result) {
    for (;;) {
        if (c->current == NULL) {
            if (c->next >= c->count) {
                Py_INCREF(Py_None);
                *result = Py_None;
                return PYGEN_RETURN;
            }
            PyObject *message = c->messages[c->next];
            c->messages[c->next] = NULL;
            c->next++;
            PyObject *awaitable = PyObject_CallOneArg(c->send, message);
            Py_DECREF(message);
            if (awaitable == NULL) goto fail;
            c->current = awaitable_iter(awaitable);
            Py_DECREF(awaitable);
            if (c->current == NULL) goto fail;
            value = Py_None;
        }
        PyObject *out = NULL;
        PySendResult rc = PyIter_Send(c->current, value, &out);
        if (rc == PYGEN_NEXT) {
            *result = out;
            return PYGEN_NEXT;
        }
        Py_CLEAR(c->current);
        if (rc == PYGEN_ERROR) goto fail;
        Py_XDECREF(out); /* a send's own result is not ours */
        value = Py_None;
    }
fail:
    for (int i = c->next; i < c->count; i++) Py_CLEAR(c->messages[i]);
    c->next = c->count;
    *result = NULL;
    return PYGEN_ERROR;
}

static PySendResult chain_am_send(PyObject *self, PyObject *value, PyObject **result) {
    return chain_step(SENDS(self), value, result);
}

static PyObject *chain_iternext(PyObject *self) {
    PyObject *out = NULL;
    PySendResult rc = chain_step(SENDS(self), Py_None, &out);
    if (rc == PYGEN_NEXT) return out;
    if (rc == PYGEN_RETURN) Py_DECREF(out); /* NULL without an exception: StopIteration */
    return NULL;
}

static PyObject *chain_send(PyObject *self, PyObject *value) {
    PyObject *out = NULL;
    PySendResult rc = chain_step(SENDS(self), value, &out);
    if (rc == PYGEN_NEXT) return out;
    if (rc == PYGEN_RETURN) {
        Py_DECREF(out); /* always None */
        PyErr_SetNone(PyExc_StopIteration);
    }
    return NULL;
}

/* throw(exc) / throw(type[, value[, tb]]): into the send in flight (as `await` passes it on), the
   chain going on if that send ends normally; with none in flight (before the first step, after
   the last), raised here and the rest dropped. */
static PyObject *optional_attr(PyObject *o, const char *name) {
    PyObject *attr = PyObject_GetAttrString(o, name);
    if (attr == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) PyErr_Clear();
    return attr;
}

static PyObject *chain_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Sends *c = SENDS(self);
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    if (c->current != NULL) {
        PyObject *inner = c->current;
        Py_INCREF(inner);
        PyObject *out = NULL;
        PyObject *meth = optional_attr(inner, "throw");
        if (meth == NULL && PyErr_Occurred()) {
            Py_DECREF(inner);
            return NULL;
        }
        if (meth != NULL) {
            out = PyObject_Vectorcall(meth, args, (size_t)nargs, NULL);
            Py_DECREF(meth);
            Py_DECREF(inner);
            if (out != NULL) return out;
            if (!PyErr_ExceptionMatches(PyExc_StopIteration)) {
                Py_CLEAR(c->current);
                for (int i = c->next; i < c->count; i++) Py_CLEAR(c->messages[i]);
                c->next = c->count;
                return NULL;
            }
            PyErr_Clear(); /* the send ended: the chain goes on */
            Py_CLEAR(c->current);
            return chain_send(self, Py_None);
        }
        Py_DECREF(inner);
        Py_CLEAR(c->current); /* an iterator without throw: dropped, the error raised here */
    }
    for (int i = c->next; i < c->count; i++) Py_CLEAR(c->messages[i]);
    c->next = c->count;
    PyObject *typ = args[0];
    PyObject *val = nargs > 1 ? args[1] : Py_None;
    if (PyExceptionInstance_Check(typ)) {
        if (val != Py_None) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val);
    } else {
        PyErr_SetString(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException");
    }
    return NULL;
}

static PyObject *chain_close(PyObject *self, PyObject *unused) {
    Sends *c = SENDS(self);
    for (int i = c->next; i < c->count; i++) Py_CLEAR(c->messages[i]);
    c->next = c->count;
    if (c->current != NULL) {
        PyObject *inner = c->current;
        c->current = NULL;
        PyObject *meth = optional_attr(inner, "close");
        Py_DECREF(inner);
        if (meth == NULL && PyErr_Occurred()) return NULL;
        if (meth != NULL) {
            PyObject *out = PyObject_CallNoArgs(meth);
            Py_DECREF(meth);
            if (out == NULL) return NULL;
            Py_DECREF(out);
        }
    }
    Py_RETURN_NONE;
}

static PyObject *chain_await(PyObject *self) {
    Py_INCREF(self);
    return self;
}

static PyMethodDef chain_methods[] = {
    {"send", chain_send, METH_O, "Resume the send in flight with a value."},
    {"throw", (PyCFunction)(void (*)(void))chain_throw, METH_FASTCALL, "Raise into the send in flight."},
    {"close", chain_close, METH_NOARGS, "Close the send in flight; the rest is not sent."},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods chain_async = {chain_await, NULL, NULL, chain_am_send};

static PyTypeObject ChainType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "privacy_middleware.fields._native.Chain",
    .tp_basicsize = sizeof(Chain),
    .tp_dealloc = (destructor)chain_dealloc,
    .tp_as_async = &chain_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Awaits its sends in turn.",
    .tp_traverse = (traverseproc)chain_traverse,
    .tp_clear = (inquiry)chain_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = chain_iternext,
    .tp_methods = chain_methods,
};

/* Whether two exact str objects are equal: the same object, or the same length, kind and code points
   (the equality dict look-ups use, without PyUnicode_Compare's ordering). */
static int str_eq(PyObject *a, PyObject *b) {
    if (a == b) return 1;
#if PY_VERSION_HEX < 0x030C0000 /* every str is ready from 3.12 on (and the macro deprecated) */
    if (PyUnicode_READY(a) < 0 || PyUnicode_READY(b) < 0) return -1;
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(a);
    if (n != PyUnicode_GET_LENGTH(b) || PyUnicode_KIND(a) != PyUnicode_KIND(b)) return 0;
    return memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * PyUnicode_KIND(a)) == 0;
}

/* The last Content-Type verdict read from a guard's table: the table, the exact bytes value and its
   verdict (strong references). A table's verdicts never change once set (ResponseCardGuard.is_json
   only adds), and the memo keeps its table alive, so a match is the table's own answer; a shop
   answers with one Content-Type value nearly always, and the memo saves hashing it per response. */
static PyObject *s_memo_table, *s_memo_type, *s_memo_verdict;

/* The table's verdict for a Content-Type value (borrowed), or NULL: not in the table, or an error. */
static PyObject *json_verdict(PyObject *table, PyObject *content_type) {
    if (table == s_memo_table && PyBytes_CheckExact(content_type)) {
        Py_ssize_t n = PyBytes_GET_SIZE(content_type);
        if (n == PyBytes_GET_SIZE(s_memo_type) &&
            memcmp(PyBytes_AS_STRING(content_type), PyBytes_AS_STRING(s_memo_type), (size_t)n) == 0)
            return s_memo_verdict;
    }
    Py_INCREF(content_type);
    PyObject *verdict = PyDict_GetItemWithError(table, content_type);
    if (verdict != NULL && PyBytes_CheckExact(content_type)) {
        Py_INCREF(table);
        Py_INCREF(verdict);
        PyObject *old_table = s_memo_table, *old_type = s_memo_type, *old_verdict = s_memo_verdict;
        s_memo_table = table;
        s_memo_type = content_type; /* the reference taken above */
        s_memo_verdict = verdict;
        Py_XDECREF(old_table);
        Py_XDECREF(old_type);
        Py_XDECREF(old_verdict);
        return verdict; /* borrowed: the memo holds it */
    }
    Py_DECREF(content_type);
    return verdict;
}

enum { CS_START = 0, CS_HELD = 1, CS_PASS = 2, CS_PYTHON = 3 };

typedef struct {
    PyObject_HEAD
    Sends chain; /* the held start and the first body, when this is their awaitable (SENDS) */
    vectorcallfunc vectorcall;
    PyObject *json_types; /* dict: Content-Type value -> True/False */
    PyObject *resume;     /* resume(scope, send, start) -> the Python guard's send */
    PyObject *scope;
    PyObject *send;
    PyObject *held;   /* the held start (CS_HELD) */
    PyObject *python; /* the Python guard's send (CS_PYTHON) */
    int mode;
    int head; /* the request's method is HEAD: 1, or not: 0; -1 read from the scope at the start */
} CardSend;

/* The awaitable methods (SENDS) read a CardSend's chain where they read a Chain's. */
_Static_assert(offsetof(CardSend, chain) == offsetof(Chain, s), "CardSend and Chain keep their Sends at one offset");

static PyTypeObject CardSendType;
static PyObject *s_path, *s_type, *s_start, *s_body, *s_body_key, *s_status, *s_headers, *s_more_body, *s_method, *s_head, *s_start_names;

static int cardsend_traverse(CardSend *o, visitproc visit, void *arg) {
    Py_VISIT(o->json_types);
    Py_VISIT(o->resume);
    Py_VISIT(o->scope);
    Py_VISIT(o->send);
    Py_VISIT(o->held);
    Py_VISIT(o->python);
    return sends_traverse(&o->chain, visit, arg);
}

static int cardsend_clear(CardSend *o) {
    Py_CLEAR(o->json_types);
    Py_CLEAR(o->resume);
    Py_CLEAR(o->scope);
    Py_CLEAR(o->send);
    Py_CLEAR(o->held);
    Py_CLEAR(o->python);
    sends_clear(&o->chain);
    return 0;
}

static void cardsend_dealloc(CardSend *o) {
    PyObject_GC_UnTrack(o);
    cardsend_clear(o);
    PyObject_GC_Del(o);
}

/* An empty awaitable: a held start costs its sender nothing to await. One for all (made at import):
   with no message to send it has no state to change, and answers every await at once. */
static PyObject *s_done;
static PyObject *done(void) { return Py_NewRef(s_done); }

/* From here on the Python guard answers: made with the held start (or none), given `message`. */
static PyObject *to_python(CardSend *o, PyObject *message) {
    PyObject *start = o->held != NULL ? o->held : Py_None;
    PyObject *python = PyObject_CallFunctionObjArgs(o->resume, o->scope, o->send, start, NULL);
    if (python == NULL) return NULL;
    Py_CLEAR(o->held);
    o->python = python;
    o->mode = CS_PYTHON;
    return PyObject_CallOneArg(python, message);
}

static PyObject *pass_on(CardSend *o, PyObject *message) {
    o->mode = CS_PASS;
    return PyObject_CallOneArg(o->send, message);
}

/* The start: CS_PASS and sent on, CS_HELD and an empty awaitable, or the Python guard. */
static PyObject *cardsend_start(CardSend *o, PyObject *message) {
    PyObject *status = PyDict_GetItemWithError(message, s_status);
    if (status == NULL) {
        if (PyErr_Occurred()) return NULL;
        return to_python(o, message);
    }
    if (!PyLong_CheckExact(status)) return to_python(o, message);
    int overflow = 0;
    long code = PyLong_AsLongAndOverflow(status, &overflow);
    if (code == -1 && PyErr_Occurred()) return NULL;
    if (overflow || code < 200) return to_python(o, message);
    if (code == 204 || code == 304) return pass_on(o, message);
    int head = o->head;
    if (head < 0) {
        if (!PyDict_CheckExact(o->scope)) return to_python(o, message);
        PyObject *method = PyDict_GetItemWithError(o->scope, s_method);
        if (method == NULL) {
            if (PyErr_Occurred()) return NULL;
            return to_python(o, message);
        }
        if (!PyUnicode_CheckExact(method)) return to_python(o, message);
        head = str_eq(method, s_head);
        if (head < 0) return NULL;
    }
    if (head) return pass_on(o, message);
    PyObject *headers = PyDict_GetItemWithError(message, s_headers);
    if (headers == NULL) {
        if (PyErr_Occurred()) return NULL;
        return pass_on(o, message); /* no headers: no Content-Type */
    }
    if (headers == Py_None) return pass_on(o, message);
    PyObject *found[2] = {NULL, NULL};
    if (!scan_headers(headers, s_start_names, 2, found)) return to_python(o, message);
    if (found[0] == NULL) return pass_on(o, message); /* no Content-Type: not JSON */
    int has_coding = found[1] != NULL;
    PyObject *json = json_verdict(o->json_types, found[0]);
    if (json == NULL) {
        if (PyErr_Occurred()) return NULL;
        return to_python(o, message); /* not in the table yet: the Python guard reads it */
    }
    if (json == Py_False) return pass_on(o, message);
    if (json != Py_True || has_coding) return to_python(o, message);
    Py_INCREF(message);
    o->held = message;
    o->mode = CS_HELD;
    return done();
}

/* The held start's first body: both sent in turn with this object as their awaitable, or the Python guard. */
static PyObject *cardsend_first(CardSend *o, PyObject *message) {
    PyObject *more = PyDict_GetItemWithError(message, s_more_body);
    if (more == NULL && PyErr_Occurred()) return NULL;
    if (more != NULL && more != Py_False) return to_python(o, message);
    PyObject *body = PyDict_GetItemWithError(message, s_body_key);
    if (body == NULL) {
        if (PyErr_Occurred()) return NULL;
        return to_python(o, message);
    }
    if (!PyBytes_CheckExact(body)) return to_python(o, message);
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(body);
    if (digit_scan(p, p + PyBytes_GET_SIZE(body)) != 0) return to_python(o, message);
    /* this object is the awaitable that sends both in turn: no other object made */
    sends_arm(&o->chain, o->send, o->held, message);
    Py_CLEAR(o->held);
    o->mode = CS_PASS;
    return Py_NewRef((PyObject *)o);
}

static PyObject *cardsend_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    CardSend *o = (CardSend *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "send takes one message");
        return NULL;
    }
    PyObject *message = args[0];
    switch (o->mode) {
    case CS_PASS:
        return PyObject_CallOneArg(o->send, message);
    case CS_PYTHON:
        return PyObject_CallOneArg(o->python, message);
    default:
        break;
    }
    if (!PyDict_CheckExact(message)) return to_python(o, message);
    PyObject *kind = PyDict_GetItemWithError(message, s_type);
    if (kind == NULL) {
        if (PyErr_Occurred()) return NULL;
        return to_python(o, message);
    }
    if (!PyUnicode_CheckExact(kind)) return to_python(o, message);
    if (o->mode == CS_START) {
        int is_start = str_eq(kind, s_start);
        if (is_start < 0) return NULL;
        return is_start ? cardsend_start(o, message) : to_python(o, message);
    }
    int is_body = str_eq(kind, s_body);
    if (is_body < 0) return NULL;
    return is_body ? cardsend_first(o, message) : to_python(o, message);
}

static PyMemberDef cardsend_members[] = {
    {"downstream", T_OBJECT_EX, offsetof(CardSend, send), READONLY, "The server's send."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject CardSendType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "privacy_middleware.fields._native.CardSend",
    .tp_basicsize = sizeof(CardSend),
    .tp_dealloc = (destructor)cardsend_dealloc,
    .tp_vectorcall_offset = offsetof(CardSend, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "One response's send on a route without a plan, and the awaitable of its held start and first body: see card_send.",
    .tp_traverse = (traverseproc)cardsend_traverse,
    .tp_clear = (inquiry)cardsend_clear,
    .tp_members = cardsend_members,
    .tp_as_async = &chain_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = chain_iternext,
    .tp_methods = chain_methods,
};

/* A CardSend; `head` as its field (-1: not known yet). */
static PyObject *card_send_new(PyObject *const *args, Py_ssize_t nargs, int head) {
    if (nargs != 3 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) != 2 ||
        !PyDict_CheckExact(PyTuple_GET_ITEM(args[0], 0))) {
        PyErr_SetString(PyExc_TypeError, "card_send((json_types, resume), scope, send)");
        return NULL;
    }
    CardSend *o = PyObject_GC_New(CardSend, &CardSendType);
    if (o == NULL) return NULL;
    o->vectorcall = cardsend_vectorcall;
    o->json_types = Py_NewRef(PyTuple_GET_ITEM(args[0], 0));
    o->resume = Py_NewRef(PyTuple_GET_ITEM(args[0], 1));
    o->scope = Py_NewRef(args[1]);
    o->send = Py_NewRef(args[2]);
    o->held = NULL;
    o->python = NULL;
    o->mode = CS_START;
    o->head = head;
    sends_arm(&o->chain, NULL, NULL, NULL);
    PyObject_GC_Track(o);
    return (PyObject *)o;
}

static PyObject *card_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return card_send_new(args, nargs, -1);
}

/* `bodiless_card_send(config, scope, send)`: card_send's `send` when the request certainly carries no
   body, else None (the caller then takes the path that reads and checks a body, and decides there,
   in Python, everything declined here). Certainly no body: the scope is a dict with a str method and
   its headers (absent, None, or a list or tuple of pairs of bytes) have no Transfer-Encoding, and
   either a first Content-Length of ASCII digits that are all 0, or none and a method of GET, HEAD,
   OPTIONS or DELETE (asgi/card_sentinel.py `has_body`, which says no body for each of these). Any
   other Content-Length (a number above 0, a sign, spaces, not a number), a Transfer-Encoding, another
   method, headers in another form: None. */
static PyObject *s_body_names, *s_bodiless_methods;

/* bodiless_card_send's answer; `method` the scope's, when the caller has read it (else NULL). */
static PyObject *bodiless_send(PyObject *config, PyObject *scope, PyObject *send, PyObject *method) {
    if (!PyDict_CheckExact(scope)) Py_RETURN_NONE;
    PyObject *headers = PyDict_GetItemWithError(scope, s_headers);
    if (headers == NULL && PyErr_Occurred()) return NULL;
    PyObject *found[2] = {NULL, NULL};
    if (headers != NULL && headers != Py_None && !scan_headers(headers, s_body_names, 2, found)) Py_RETURN_NONE;
    if (found[1] != NULL) Py_RETURN_NONE; /* a Transfer-Encoding */
    if (found[0] != NULL) {
        Py_ssize_t len = PyBytes_GET_SIZE(found[0]);
        const char *digits = PyBytes_AS_STRING(found[0]);
        if (len == 0) Py_RETURN_NONE;
        for (Py_ssize_t i = 0; i < len; i++)
            if (digits[i] != '0') Py_RETURN_NONE;
    } else {
        if (method == NULL) {
            method = PyDict_GetItemWithError(scope, s_method);
            if (method == NULL) {
                if (PyErr_Occurred()) return NULL;
                Py_RETURN_NONE;
            }
        }
        if (!PyUnicode_CheckExact(method)) Py_RETURN_NONE;
        int bodiless = PySet_Contains(s_bodiless_methods, method);
        if (bodiless < 0) return NULL;
        if (!bodiless) Py_RETURN_NONE;
    }
    PyObject *args[3] = {config, scope, send};
    int head = -1;
    if (method != NULL && PyUnicode_CheckExact(method)) {
        head = str_eq(method, s_head);
        if (head < 0) return NULL;
    }
    return card_send_new(args, 3, head);
}

static PyObject *bodiless_card_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "bodiless_card_send((json_types, resume), scope, send)");
        return NULL;
    }
    return bodiless_send(args[0], args[1], args[2], NULL);
}

/* `pass_through((config, routes), scope, send)`: the middleware's pass-through decision and
   bodiless_card_send's `send` in one call. `routes` is a dict of path -> set of methods, the
   (method, path) pairs the middleware has found to have no plan, no API or metrics path and a method
   never placed on a plan; None unless the scope is an exact dict of an "http" request whose str path
   and method are there and which certainly carries no body (as bodiless_card_send). */
static PyObject *s_http;

static PyObject *pass_through(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) != 2 ||
        !PyDict_CheckExact(PyTuple_GET_ITEM(args[0], 1))) {
        PyErr_SetString(PyExc_TypeError, "pass_through((config, routes), scope, send)");
        return NULL;
    }
    PyObject *routes = PyTuple_GET_ITEM(args[0], 1);
    PyObject *scope = args[1];
    if (!PyDict_CheckExact(scope)) Py_RETURN_NONE;
    PyObject *kind = PyDict_GetItemWithError(scope, s_type);
    if (kind == NULL || !PyUnicode_CheckExact(kind)) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    int http = str_eq(kind, s_http);
    if (http <= 0) return http < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *path = PyDict_GetItemWithError(scope, s_path);
    if (path == NULL || !PyUnicode_CheckExact(path)) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *methods = PyDict_GetItemWithError(routes, path);
    if (methods == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *method = PyDict_GetItemWithError(scope, s_method);
    if (method == NULL || !PyUnicode_CheckExact(method) || !PyAnySet_Check(methods)) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    int known = PySet_Contains(methods, method);
    if (known <= 0) return known < 0 ? NULL : Py_NewRef(Py_None);
    return bodiless_send(PyTuple_GET_ITEM(args[0], 0), scope, args[2], method);
}

/* `Front`: the base of the middleware's class (middleware.py), whose call is this C function. A
   class's `__call__` written in Python costs every request a bound method and a frame (about 1,000
   instructions, half a per cent of a small shop's request) before anything is decided. After
   `arm(state, app, serve)`, a call `(scope, receive, send)` that pass_through(state, scope, send)
   answers with a send goes to `app(scope, receive, that send)`, and every other call (no state,
   another request, other arguments) to `serve` with the call's own arguments. What either hands
   back goes to the server. */
typedef struct {
    PyObject_HEAD
    PyObject *state; /* pass_through's (config, routes); NULL: no request takes the pass-through */
    PyObject *app;
    PyObject *serve;
} Front;

static int front_traverse(Front *o, visitproc visit, void *arg) {
    Py_VISIT(o->state);
    Py_VISIT(o->app);
    Py_VISIT(o->serve);
    return 0;
}

static int front_clear(Front *o) {
    Py_CLEAR(o->state);
    Py_CLEAR(o->app);
    Py_CLEAR(o->serve);
    return 0;
}

static void front_dealloc(Front *o) {
    PyObject_GC_UnTrack(o);
    front_clear(o);
    Py_TYPE(o)->tp_free((PyObject *)o);
}

static PyObject *front_call(PyObject *self, PyObject *args, PyObject *kwargs) {
    Front *o = (Front *)self;
    if (o->serve == NULL) {
        PyErr_SetString(PyExc_TypeError, "called before arm(state, app, serve)");
        return NULL;
    }
    if (o->state != NULL && PyTuple_GET_SIZE(args) == 3 && (kwargs == NULL || PyDict_GET_SIZE(kwargs) == 0)) {
        PyObject *scope = PyTuple_GET_ITEM(args, 0), *send = PyTuple_GET_ITEM(args, 2);
        PyObject *decide[3] = {o->state, scope, send};
        PyObject *guarded = pass_through(NULL, decide, 3);
        if (guarded == NULL) return NULL;
        if (guarded != Py_None) {
            PyObject *call[3] = {scope, PyTuple_GET_ITEM(args, 1), guarded};
            PyObject *app = Py_NewRef(o->app); /* held across the call: an arm() inside it cannot free it */
            PyObject *answer = PyObject_Vectorcall(app, call, 3, NULL);
            Py_DECREF(app);
            Py_DECREF(guarded);
            return answer;
        }
        Py_DECREF(guarded);
    }
    PyObject *serve = Py_NewRef(o->serve);
    PyObject *answer = PyObject_Call(serve, args, kwargs);
    Py_DECREF(serve);
    return answer;
}

static PyObject *front_arm(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "arm(state, app, serve)");
        return NULL;
    }
    PyObject *state = args[0];
    if (state != Py_None && (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != 2 ||
                             !PyDict_CheckExact(PyTuple_GET_ITEM(state, 1)))) {
        PyErr_SetString(PyExc_TypeError, "arm: state is None or pass_through's (config, routes)");
        return NULL;
    }
    if (!PyCallable_Check(args[1]) || !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "arm: app and serve must be callable");
        return NULL;
    }
    Front *o = (Front *)self;
    Py_XSETREF(o->state, state != Py_None ? Py_NewRef(state) : NULL);
    Py_XSETREF(o->app, Py_NewRef(args[1]));
    Py_XSETREF(o->serve, Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

static PyMethodDef front_methods[] = {
    {"arm", (PyCFunction)(void (*)(void))front_arm, METH_FASTCALL,
     "arm(state, app, serve): what a call decides with (state None: every call goes to serve)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FrontType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "privacy_middleware.fields._native.Front",
    .tp_basicsize = sizeof(Front),
    .tp_dealloc = (destructor)front_dealloc,
    .tp_call = front_call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The middleware's call in C: the pass-through, else serve (see arm).",
    .tp_traverse = (traverseproc)front_traverse,
    .tp_clear = (inquiry)front_clear,
    .tp_methods = front_methods,
    .tp_new = PyType_GenericNew,
};

static PyObject *chain(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "chain(send, *messages): at most two messages");
        return NULL;
    }
    return chain_new(args[0], nargs > 1 ? args[1] : NULL, nargs > 2 ? args[2] : NULL);
}

/* --- the request side of a protected route in one pass (pipeline/native_request.py) -----------

   `request_pass(program, body)` reads a request body once and decides, without building anything,
   what the Python steps (strict read, shape guard and card-code removal, field location, card
   sentinel) would do to it, for the bodies whose re-encoding by the Python path is byte for byte
   the input but for whitespace between tokens: no escape, only ASCII, numbers as `number` above
   reads them; whitespace only where the program reads it (`spaces`: the Python path drops it at the
   top level and in the declared members, and keeps it in the others unless a card code was deleted
   there). It answers an int (a reason: the Python path runs) for anything else: such a body, invalid
   JSON, a key twice in one object, a container past the depth limit, a declared key spelled in
   another case, a declared object that is not an object, a planned value that is not a string or
   an integer, a companion key already there, a card-code key in an object not named like a card,
   and a key or value where the card sentinel looks that its prefilter would not clear. Otherwise
   (slots, removals, strips, spaces): per slot None or (value, start, end, close), the value's span
   and the position of its object's closing brace; the spans to delete (card codes in card objects
   and stripped fields, each member with one comma); how many of them are stripped fields; the
   whitespace the Python path drops when it writes a changed body back. No crypto
   here; every read is bounds-checked. */

enum { Q_OBJECT = 0, Q_SEAL = 1, Q_KEEP = 2, Q_STRIP = 3, Q_TEXT = 4, Q_WATCH = 5 };
enum { Q_MAX_KEYS = 64, Q_MAX_CUTS = 256, Q_MAX_SLOTS = 64, Q_MAX_CODES = 64, Q_MAX_SPACES = 4096 };

/* reasons for a fallback, as pipeline/native_request.py names them */
enum {
    R_SHAPE = 2,   /* not JSON this pass reads: an escape, non-ASCII, a number it does not copy, whitespace */
    R_DUPLICATE,   /* a key twice in one object */
    R_DEPTH,       /* a container past the limit */
    R_DECLARED,    /* a declared key in another case, a declared object of another type */
    R_VALUE,       /* a planned value that is not a string or an integer; a companion key present */
    R_CARD_CODE,   /* a card-code key in an object not named like a card */
    R_CARD_HINT,   /* card data may be left where the sentinel looks */
    R_LIMIT,       /* more keys, deletions or slots than this pass keeps */
};

typedef struct {
    const char *key;
    Py_ssize_t len;
    int kind;
    int arg; /* Q_OBJECT: the child node; Q_SEAL, Q_KEEP, Q_TEXT: the slot */
} QEntry;

typedef struct {
    QEntry *entries;
    int count;
} QNode;

typedef struct {
    PyObject *spec; /* keeps the key bytes alive */
    QNode *nodes;
    int n_nodes;
    int n_slots;
    int max_depth;
    int spaces; /* whitespace between tokens is read (the root a decoded level, its declared members whole) */
    const char *codes[Q_MAX_CODES]; /* card-code names, folded: lower-case letters and digits */
    Py_ssize_t code_lens[Q_MAX_CODES];
    int n_codes;
} QProgram;

typedef struct {
    State st; /* p and end, for `number` and `literal` */
    const unsigned char *base;
    const QProgram *prog;
    Py_ssize_t cut_start[Q_MAX_CUTS], cut_end[Q_MAX_CUTS]; /* deletions, in order */
    int n_cuts;
    /* Whitespace the Python path drops when it writes the body back (the top level and the declared
       members are re-encoded; the other members are copied as sent), in order. */
    Py_ssize_t space_start[Q_MAX_SPACES], space_end[Q_MAX_SPACES];
    int n_spaces;
    int strip;     /* the whitespace read now is dropped (else kept, and noted in `kept_space`) */
    int kept_space;
    Py_ssize_t strips;
    PyObject *values[Q_MAX_SLOTS];
    Py_ssize_t v_start[Q_MAX_SLOTS], v_end[Q_MAX_SLOTS], v_close[Q_MAX_SLOTS];
} QState;

static int q_value(QState *q, int depth, const unsigned char *name, Py_ssize_t name_len, int removed);

static int q_is_space(unsigned char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

/* Whitespace at s->p, where the program reads it: skipped, and noted to drop or to keep. */
static int q_ws(QState *q) {
    State *s = &q->st;
    if (s->p >= s->end || !q_is_space(*s->p) || !q->prog->spaces)
        return OK;
    const unsigned char *start = s->p;
    while (s->p < s->end && q_is_space(*s->p))
        s->p++;
    if (!q->strip) {
        q->kept_space = 1;
        return OK;
    }
    if (q->n_spaces >= Q_MAX_SPACES)
        return R_LIMIT;
    q->space_start[q->n_spaces] = start - q->base;
    q->space_end[q->n_spaces] = s->p - q->base;
    q->n_spaces++;
    return OK;
}

static unsigned char q_lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

/* Per byte of a string: 1 it ends the fast scan (a quote, a backslash, a control character or a
   byte above 0x7f), 2 a digit, 4 a c (every card-code hint holds one). */
static unsigned char q_string_class[256];
/* Per byte of the card look: 0 anything else (a letter, folded to lower case), 1 a digit, 2 a byte
   the fold drops, 3 a c (every hint starts with one). */
static unsigned char q_fold_class[256];

static void q_classes(void) {
    for (int c = 0; c < 256; c++)
        q_string_class[c] = (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) ? 1 : 0;
    for (int c = '0'; c <= '9'; c++) {
        q_string_class[c] = 2;
        q_fold_class[c] = 1;
    }
    q_string_class['c'] = q_string_class['C'] = 4;
    const char *dropped = " -_.\\uU";
    for (const char *d = dropped; *d; d++)
        q_fold_class[(unsigned char)*d] = 2;
    q_fold_class['c'] = q_fold_class['C'] = 3;
}

/* The folded bytes next to position `at` (dropped bytes skipped, digits as 0, letters lower case):
   up to `want` of them after it (`step` 1) or before it (`step` -1), in reading order away from it. */
static int q_folded(const unsigned char *p, Py_ssize_t len, Py_ssize_t at, int step, char *out, int want) {
    int n = 0;
    for (Py_ssize_t i = at + step; i >= 0 && i < len && n < want; i += step) {
        unsigned char kind = q_fold_class[p[i]];
        if (kind == 2)
            continue;
        out[n++] = kind == 1 ? '0' : (char)q_lower(p[i]);
    }
    return n;
}

/* The card sentinel's prefilter (`card_sentinel.may_hold_card_data`) on the ASCII bytes of one key
   or value: a run of 13 digits with only space, dash, underscore, dot, backslash or u between them,
   or `_CODE_HINTS` (`c(?:v|sc|id|av|rity|ation(?<=ification))`) in the folded letters. A key or
   value is where the sentinel looks for card data (its quotes, like the JSON around it, break any
   run or hint). */
static int q_card_hint(const unsigned char *p, Py_ssize_t len, int digits, int c) {
    if (digits) {
        int run = 0;
        for (Py_ssize_t i = 0; i < len; i++) {
            unsigned char kind = q_fold_class[p[i]];
            if (kind == 1) {
                if (++run >= 13)
                    return 1;
            } else if (kind != 2) {
                run = 0;
            }
        }
    }
    for (Py_ssize_t i = 0; c && i < len; i++) {
        if (q_fold_class[p[i]] != 3)
            continue;
        char after[5], before[3];
        int n = q_folded(p, len, i, 1, after, 5);
        if ((n >= 1 && after[0] == 'v') || (n >= 2 && memcmp(after, "sc", 2) == 0) ||
            (n >= 2 && memcmp(after, "id", 2) == 0) || (n >= 2 && memcmp(after, "av", 2) == 0) ||
            (n >= 4 && memcmp(after, "rity", 4) == 0))
            return 1;
        if (n >= 5 && memcmp(after, "ation", 5) == 0 && q_folded(p, len, i, -1, before, 3) == 3 &&
            memcmp(before, "ifi", 3) == 0) /* read backwards: i f i */
            return 1;
    }
    return 0;
}

/* A string with no escape and only ASCII (a control character: invalid JSON): its span with the
   quotes. `look`: refuse it (R_CARD_HINT) where the card look would not clear it. */
static int q_string(QState *q, const unsigned char **start, Py_ssize_t *len, int look, int *suspect) {
    State *s = &q->st;
    const unsigned char *p = s->p + 1, *end = s->end;
    int seen = 0, digits = 0;
    while (p < end) {
        unsigned char kind = q_string_class[*p];
        if (kind & 1)
            break;
        seen |= kind;
        digits += kind >> 1 & 1;
        p++;
    }
    if (p >= end || *p != '"')
        return R_SHAPE;
    *start = s->p;
    *len = p + 1 - s->p;
    s->p = p + 1;
    int maybe = (digits >= 13) | (seen & 4); /* 1: a run may be there; 4: a hint may */
    if (suspect != NULL)
        *suspect = maybe;
    if (look && maybe && q_card_hint(*start + 1, *len - 2, maybe & 1, maybe & 4))
        return R_CARD_HINT;
    return OK;
}

/* A number as `number` reads it; `look`: refuse 13 digits or more (a card number to the sentinel). */
static int q_number(QState *q, int *is_int, int look) {
    const unsigned char *start = q->st.p;
    if (number(&q->st, is_int) != OK)
        return R_SHAPE;
    if (look) {
        int digits = 0;
        for (const unsigned char *p = start; p < q->st.p; p++)
            digits += *p >= '0' && *p <= '9';
        if (digits >= 13)
            return R_CARD_HINT;
    }
    return OK;
}

static int q_cut(QState *q, Py_ssize_t start, Py_ssize_t end) {
    if (q->n_cuts >= Q_MAX_CUTS)
        return R_LIMIT;
    /* whitespace inside the deleted span is deleted with it: its own cuts (the last ones) go */
    int keep = q->n_spaces;
    while (keep > 0 && q->space_start[keep - 1] >= start)
        keep--;
    int moved = keep;
    for (int i = keep; i < q->n_spaces; i++)
        if (q->space_start[i] >= end) {
            q->space_start[moved] = q->space_start[i];
            q->space_end[moved++] = q->space_end[i];
        }
    q->n_spaces = moved;
    q->cut_start[q->n_cuts] = start;
    q->cut_end[q->n_cuts] = end;
    q->n_cuts++;
    return OK;
}

/* `shape_guard.is_card_code_key` of an ASCII key: its letters and digits, lower case, in the set. */
static int q_is_code(const QProgram *prog, const unsigned char *key, Py_ssize_t len) {
    char folded[32];
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = q_lower(key[i]);
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (n >= (Py_ssize_t)sizeof(folded))
                return 0; /* longer than every name */
            folded[n++] = (char)c;
        }
    }
    if (n == 0)
        return 0;
    for (int i = 0; i < prog->n_codes; i++)
        if (prog->code_lens[i] == n && prog->codes[i][0] == folded[0] && memcmp(prog->codes[i], folded, (size_t)n) == 0)
            return 1;
    return 0;
}

/* `"card" in fold(name)` for an ASCII name. */
static int q_card_named(const unsigned char *name, Py_ssize_t len) {
    for (Py_ssize_t i = 0; i + 4 <= len; i++)
        if (q_lower(name[i]) == 'c' && q_lower(name[i + 1]) == 'a' && q_lower(name[i + 2]) == 'r' &&
            q_lower(name[i + 3]) == 'd')
            return 1;
    return 0;
}

static int q_array(QState *q, int depth, const unsigned char *name, Py_ssize_t name_len, int removed) {
    if (depth > q->prog->max_depth)
        return R_DEPTH;
    State *s = &q->st;
    int rc;
    s->p++;
    if ((rc = q_ws(q)))
        return rc;
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return OK;
    }
    for (;;) {
        if ((rc = q_value(q, depth + 1, name, name_len, removed)) || (rc = q_ws(q)))
            return rc;
        if (s->p >= s->end)
            return R_SHAPE;
        if (*s->p == ']') {
            s->p++;
            return OK;
        }
        if (*s->p != ',')
            return R_SHAPE;
        s->p++;
        if ((rc = q_ws(q)))
            return rc;
    }
}

/* A planned value (Q_SEAL, Q_KEEP): a string or an integer, as a Python object in its slot. */
static int q_planned(QState *q, const QEntry *entry, int *pending, int *n_pending) {
    State *s = &q->st;
    const unsigned char *start = s->p;
    Py_ssize_t at = s->p - q->base;
    int rc, look = entry->kind == Q_KEEP; /* a sealed value leaves the sentinel's sight */
    PyObject *value;
    if (s->p < s->end && *s->p == '"') {
        Py_ssize_t len;
        if ((rc = q_string(q, &start, &len, look, NULL)))
            return rc;
        value = PyUnicode_FromStringAndSize((const char *)start + 1, len - 2);
    } else {
        int is_int;
        if (s->p >= s->end || !(*s->p == '-' || (*s->p >= '0' && *s->p <= '9')))
            return R_VALUE;
        if ((rc = q_number(q, &is_int, look)))
            return rc;
        if (!is_int)
            return R_VALUE;
        char digits[24];
        Py_ssize_t len = s->p - start;
        if (len >= (Py_ssize_t)sizeof(digits))
            return R_VALUE; /* never: `number` reads at most 18 digits and a sign */
        memcpy(digits, start, (size_t)len);
        digits[len] = 0;
        value = PyLong_FromString(digits, NULL, 10);
    }
    if (value == NULL)
        return ERROR;
    if (q->values[entry->arg] != NULL || *n_pending >= Q_MAX_SLOTS) { /* never: one entry per slot */
        Py_DECREF(value);
        return R_LIMIT;
    }
    q->values[entry->arg] = value;
    q->v_start[entry->arg] = at;
    q->v_end[entry->arg] = s->p - q->base;
    q->v_close[entry->arg] = -1;
    pending[(*n_pending)++] = entry->arg;
    return OK;
}

/* An object; `node` the declared one at its place (NULL: none), `name` the key it sits under (NULL at
   the root), `removed` inside a deleted member (nothing there is located, deleted or looked at). */
static int q_object(QState *q, const QNode *node, int depth, const unsigned char *name, Py_ssize_t name_len,
                    int removed) {
    if (depth > q->prog->max_depth)
        return R_DEPTH;
    State *s = &q->st;
    const unsigned char *keys[Q_MAX_KEYS];
    Py_ssize_t key_lens[Q_MAX_KEYS];
    int pending[Q_MAX_SLOTS]; /* the slots located in this object: their close is its brace */
    int n_keys = 0, n_pending = 0, kept = 0, rc;
    Py_ssize_t comma = -1; /* the comma before this member */
    int root = depth == 1;
    s->p++;
    if ((rc = q_ws(q)))
        return rc;
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return OK;
    }
    for (;;) {
        if (s->p >= s->end || *s->p != '"')
            return R_SHAPE;
        const unsigned char *key;
        Py_ssize_t key_len;
        Py_ssize_t member_start = s->p - q->base;
        int suspect;
        if ((rc = q_string(q, &key, &key_len, 0, &suspect)))
            return rc;
        key++;
        key_len -= 2;
        if (n_keys >= Q_MAX_KEYS)
            return R_LIMIT;
        for (int i = 0; i < n_keys; i++)
            if (key_lens[i] == key_len && memcmp(keys[i], key, (size_t)key_len) == 0)
                return R_DUPLICATE;
        keys[n_keys] = key;
        key_lens[n_keys++] = key_len;
        if ((rc = q_ws(q)))
            return rc;
        if (s->p >= s->end || *s->p != ':')
            return R_SHAPE;
        s->p++;
        if ((rc = q_ws(q)))
            return rc;
        const QEntry *entry = NULL;
        if (node != NULL) {
            for (int i = 0; i < node->count; i++) {
                const QEntry *e = &node->entries[i];
                if (e->len != key_len)
                    continue;
                if (memcmp(e->key, key, (size_t)key_len) == 0) {
                    entry = e;
                    break;
                }
                Py_ssize_t j = 0;
                while (j < key_len && q_lower((unsigned char)e->key[j]) == q_lower(key[j]))
                    j++;
                if (j == key_len)
                    return R_DECLARED; /* the guard's ambiguous_key */
            }
        }
        int remove = 0;
        if (!removed && suspect && q_is_code(q->prog, key, key_len)) { /* every name holds a c */
            if (name == NULL || !q_card_named(name, name_len))
                return R_CARD_CODE; /* whether the object holds a card is the Python path's question */
            remove = 1;             /* `remove_card_codes`, before any field rule */
        } else if (!removed && entry != NULL && entry->kind == Q_STRIP) {
            if (s->p + 4 <= s->end && memcmp(s->p, "null", 4) == 0)
                return R_VALUE; /* a null is not stripped */
            remove = 1;
            q->strips++;
        }
        if (!removed && !remove && suspect && q_card_hint(key, key_len, suspect & 1, suspect & 4))
            return R_CARD_HINT; /* a key the sentinel looks at */
        int cuts = q->n_cuts;
        if (root) { /* a declared member is re-encoded by the Python path; another is copied as sent */
            q->strip = entry != NULL && entry->kind != Q_WATCH;
            q->kept_space = 0;
        }
        if (removed || remove || entry == NULL) {
            if ((rc = q_value(q, depth + 1, key, key_len, removed || remove)))
                return rc;
        } else if (entry->kind == Q_TEXT) {
            if (s->p < s->end && *s->p == '"') {
                const unsigned char *start;
                Py_ssize_t len;
                Py_ssize_t at = s->p - q->base;
                if ((rc = q_string(q, &start, &len, 1, NULL)))
                    return rc;
                PyObject *text = PyUnicode_FromStringAndSize((const char *)start + 1, len - 2);
                if (text == NULL)
                    return ERROR;
                if (q->values[entry->arg] != NULL) { /* never: one entry per slot */
                    Py_DECREF(text);
                    return R_LIMIT;
                }
                q->values[entry->arg] = text;
                q->v_start[entry->arg] = at;
                q->v_end[entry->arg] = at + len;
                q->v_close[entry->arg] = -1;
            } else if ((rc = q_value(q, depth + 1, key, key_len, 0))) {
                return rc;
            }
        } else if (entry->kind == Q_OBJECT) {
            if (s->p >= s->end || *s->p != '{')
                return R_DECLARED; /* the guard's wrong_container_type (or a null: Python's) */
            if ((rc = q_object(q, &q->prog->nodes[entry->arg], depth + 1, key, key_len, 0)))
                return rc;
        } else if (entry->kind == Q_WATCH) {
            return R_VALUE;
        } else if ((rc = q_planned(q, entry, pending, &n_pending))) {
            return rc;
        }
        if (root) {
            /* a member copied as sent that the Python path re-encodes after all (a card code deleted
               in it marks it for its card prefilter) must be written without its whitespace */
            if (q->kept_space && q->n_cuts != cuts)
                return R_SHAPE;
            q->strip = 1;
        }
        Py_ssize_t member_end = s->p - q->base;
        if ((rc = q_ws(q)))
            return rc;
        if (s->p >= s->end)
            return R_SHAPE;
        int more = *s->p == ',';
        if (remove) { /* the member with one comma: the one before it if a kept member precedes it */
            Py_ssize_t after = s->p - q->base + more; /* past the comma after it */
            if ((rc = kept ? q_cut(q, comma, member_end) : q_cut(q, member_start, more ? after : member_end)))
                return rc;
        } else {
            kept++;
        }
        if (more) {
            comma = s->p - q->base;
            s->p++;
            if ((rc = q_ws(q)))
                return rc;
            continue;
        }
        if (*s->p != '}')
            return R_SHAPE;
        for (int i = 0; i < n_pending; i++)
            q->v_close[pending[i]] = s->p - q->base;
        s->p++;
        return OK;
    }
}

static int q_value(QState *q, int depth, const unsigned char *name, Py_ssize_t name_len, int removed) {
    State *s = &q->st;
    if (s->p >= s->end)
        return R_SHAPE;
    const unsigned char *start;
    Py_ssize_t len;
    int is_int;
    switch (*s->p) {
    case '{':
        return q_object(q, NULL, depth, name, name_len, removed);
    case '[':
        return q_array(q, depth, name, name_len, removed);
    case '"':
        return q_string(q, &start, &len, !removed, NULL);
    case 't':
        return literal(s, "true", 4, 0) ? R_SHAPE : OK;
    case 'f':
        return literal(s, "false", 5, 0) ? R_SHAPE : OK;
    case 'n':
        return literal(s, "null", 4, 0) ? R_SHAPE : OK;
    default:
        return q_number(q, &is_int, !removed);
    }
}

static void request_program_free(PyObject *capsule) {
    QProgram *prog = PyCapsule_GetPointer(capsule, "privacy_middleware.request");
    if (prog == NULL)
        return;
    for (int i = 0; i < prog->n_nodes; i++)
        PyMem_Free(prog->nodes[i].entries);
    PyMem_Free(prog->nodes);
    Py_XDECREF(prog->spec);
    PyMem_Free(prog);
}

/* request_compile((nodes, n_slots, codes, max_depth)): nodes[0] is the root; a node is a tuple of
   (key, kind, arg); codes the card-code names (bytes, folded). */
static PyObject *request_compile(PyObject *self, PyObject *spec) {
    PyObject *nodes, *codes;
    int n_slots, max_depth, spaces;
    if (!PyArg_ParseTuple(spec, "O!iO!ip", &PyTuple_Type, &nodes, &n_slots, &PyTuple_Type, &codes, &max_depth,
                          &spaces))
        return NULL;
    Py_ssize_t n_nodes = PyTuple_GET_SIZE(nodes);
    if (n_nodes < 1 || n_nodes > 4096 || n_slots < 0 || n_slots > Q_MAX_SLOTS || max_depth < 1 ||
        max_depth > MAX_DEPTH || PyTuple_GET_SIZE(codes) > Q_MAX_CODES) {
        PyErr_SetString(PyExc_ValueError, "request program out of bounds");
        return NULL;
    }
    QProgram *prog = PyMem_Calloc(1, sizeof(QProgram));
    if (prog == NULL)
        return PyErr_NoMemory();
    Py_INCREF(spec);
    prog->spec = spec;
    prog->n_slots = n_slots;
    prog->max_depth = max_depth;
    prog->spaces = spaces;
    PyObject *capsule = PyCapsule_New(prog, "privacy_middleware.request", request_program_free);
    if (capsule == NULL) {
        Py_DECREF(spec);
        PyMem_Free(prog);
        return NULL;
    }
    prog->n_codes = (int)PyTuple_GET_SIZE(codes);
    for (int i = 0; i < prog->n_codes; i++) {
        if (bytes_item(PyTuple_GET_ITEM(codes, i), &prog->codes[i], &prog->code_lens[i]) < 0)
            goto fail;
        if (prog->code_lens[i] < 1 || memchr(prog->codes[i], 'c', (size_t)prog->code_lens[i]) == NULL) {
            PyErr_SetString(PyExc_ValueError, "a card-code name without a c"); /* keys without one skip the look */
            goto fail;
        }
    }
    prog->nodes = PyMem_Calloc((size_t)n_nodes, sizeof(QNode));
    if (prog->nodes == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    prog->n_nodes = (int)n_nodes;
    for (Py_ssize_t i = 0; i < n_nodes; i++) {
        PyObject *entries = PyTuple_GET_ITEM(nodes, i);
        if (!PyTuple_Check(entries)) {
            PyErr_SetString(PyExc_TypeError, "a node is a tuple of entries");
            goto fail;
        }
        QNode *node = &prog->nodes[i];
        node->count = (int)PyTuple_GET_SIZE(entries);
        node->entries = PyMem_Calloc((size_t)node->count + 1, sizeof(QEntry));
        if (node->entries == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        for (int j = 0; j < node->count; j++) {
            QEntry *e = &node->entries[j];
            PyObject *key;
            if (!PyArg_ParseTuple(PyTuple_GET_ITEM(entries, j), "Oii", &key, &e->kind, &e->arg) ||
                bytes_item(key, &e->key, &e->len) < 0)
                goto fail;
            int slot = e->kind == Q_SEAL || e->kind == Q_KEEP || e->kind == Q_TEXT;
            int bad = e->kind < Q_OBJECT || e->kind > Q_WATCH || (slot && (e->arg < 0 || e->arg >= n_slots)) ||
                      (e->kind == Q_OBJECT && (e->arg <= i || e->arg >= n_nodes));
            if (bad) {
                PyErr_SetString(PyExc_ValueError, "request program entry out of bounds");
                goto fail;
            }
        }
    }
    return capsule;
fail:
    Py_DECREF(capsule);
    return NULL;
}

/* request_pass(program, body) -> (slots, removals, strips), or an int: the reason for the Python path */
static PyObject *request_pass(PyObject *self, PyObject *args) {
    PyObject *capsule;
    Py_buffer body;
    if (!PyArg_ParseTuple(args, "Oy*", &capsule, &body))
        return NULL;
    const QProgram *prog = PyCapsule_GetPointer(capsule, "privacy_middleware.request");
    if (prog == NULL) {
        PyBuffer_Release(&body);
        return NULL;
    }
    QState *q = PyMem_Malloc(sizeof(QState));
    if (q == NULL) {
        PyBuffer_Release(&body);
        return PyErr_NoMemory();
    }
    q->n_cuts = 0;
    q->n_spaces = 0;
    q->strip = 1; /* the top level is a decoded level: written back without whitespace */
    q->kept_space = 0;
    q->strips = 0;
    memset(q->values, 0, sizeof(q->values));
    PyObject *result = NULL, *slots = NULL, *removals = NULL, *spaces = NULL;
    q->base = body.buf;
    q->st.p = q->base;
    q->st.end = q->base + body.len;
    q->prog = prog;
    int rc = q_ws(q);
    if (rc == OK && (q->st.p >= q->st.end || *q->st.p != '{'))
        rc = R_DECLARED; /* the root is declared an object */
    if (rc == OK)
        rc = q_object(q, &prog->nodes[0], 1, NULL, 0, 0);
    if (rc == OK)
        rc = q_ws(q);
    if (rc == OK && q->st.p != q->st.end)
        rc = R_SHAPE;
    if (rc == ERROR)
        goto done;
    if (rc != OK) {
        result = PyLong_FromLong(rc);
        goto done;
    }
    slots = PyList_New(prog->n_slots);
    removals = PyList_New(q->n_cuts);
    spaces = PyList_New(q->n_spaces);
    if (slots == NULL || removals == NULL || spaces == NULL)
        goto done;
    for (int i = 0; i < q->n_spaces; i++) {
        PyObject *span = Py_BuildValue("(nn)", q->space_start[i], q->space_end[i]);
        if (span == NULL)
            goto done;
        PyList_SET_ITEM(spaces, i, span);
    }
    for (int i = 0; i < prog->n_slots; i++) {
        PyObject *item;
        if (q->values[i] == NULL)
            item = Py_NewRef(Py_None);
        else
            item = Py_BuildValue("(Onnn)", q->values[i], q->v_start[i], q->v_end[i], q->v_close[i]);
        if (item == NULL)
            goto done;
        PyList_SET_ITEM(slots, i, item);
    }
    for (int i = 0; i < q->n_cuts; i++) {
        PyObject *span = Py_BuildValue("(nn)", q->cut_start[i], q->cut_end[i]);
        if (span == NULL)
            goto done;
        PyList_SET_ITEM(removals, i, span);
    }
    result = Py_BuildValue("(OOnO)", slots, removals, q->strips, spaces);
done:
    for (int i = 0; i < Q_MAX_SLOTS; i++)
        Py_XDECREF(q->values[i]);
    Py_XDECREF(slots);
    Py_XDECREF(removals);
    Py_XDECREF(spaces);
    PyMem_Free(q);
    PyBuffer_Release(&body);
    return result;
}

static PyMethodDef methods[] = {
    {"compile", compile, METH_O, "A disclosure program from its node table."},
    {"disclose", disclose, METH_VARARGS, "The disclosed body and its report figures, or None."},
    {"strict_verdict", strict_verdict, METH_VARARGS, "1: no duplicate key, depth within; 0: not certain."},
    {"first_values", first_values, METH_VARARGS, "The first value of each header name, or None: see asgi/headers.py."},
    {"digit_run", digit_run, METH_O, "1: a run of 13 digits (card prefilter); 2: none, not ASCII; 0: none."},
    {"card_send", (PyCFunction)(void (*)(void))card_send, METH_FASTCALL,
     "card_send((json_types, resume), scope, send): one response's send on a route without a plan."},
    {"bodiless_card_send", (PyCFunction)(void (*)(void))bodiless_card_send, METH_FASTCALL,
     "bodiless_card_send((json_types, resume), scope, send): card_send's send for a request with no body, else None."},
    {"pass_through", (PyCFunction)(void (*)(void))pass_through, METH_FASTCALL,
     "pass_through((config, routes), scope, send): bodiless_card_send's send for a remembered pass-through request, else None."},
    {"chain", (PyCFunction)(void (*)(void))chain, METH_FASTCALL, "An awaitable sending up to two messages in turn."},
    {"request_compile", request_compile, METH_O, "A request program from its node table."},
    {"request_pass", request_pass, METH_VARARGS, "(slots, removals, strips) of a request body, or a reason (int)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};

#define NATIVE_INTERFACE 4

PyMODINIT_FUNC PyInit__native(void) {
    q_classes();
    digit_classes_init();
    if (PyType_Ready(&ChainType) < 0 || PyType_Ready(&CardSendType) < 0 || PyType_Ready(&FrontType) < 0) return NULL;
    s_type = PyUnicode_InternFromString("type");
    s_start = PyUnicode_InternFromString("http.response.start");
    s_body = PyUnicode_InternFromString("http.response.body");
    s_body_key = PyUnicode_InternFromString("body");
    s_status = PyUnicode_InternFromString("status");
    s_headers = PyUnicode_InternFromString("headers");
    s_more_body = PyUnicode_InternFromString("more_body");
    s_method = PyUnicode_InternFromString("method");
    s_head = PyUnicode_InternFromString("HEAD");
    s_http = PyUnicode_InternFromString("http");
    s_path = PyUnicode_InternFromString("path");
    s_start_names = Py_BuildValue("(yy)", "content-type", "content-encoding");
    s_body_names = Py_BuildValue("(yy)", "content-length", "transfer-encoding");
    PyObject *bodiless = Py_BuildValue("(ssss)", "GET", "HEAD", "OPTIONS", "DELETE");
    s_bodiless_methods = bodiless != NULL ? PyFrozenSet_New(bodiless) : NULL;
    Py_XDECREF(bodiless);
    s_done = chain_new(Py_None, NULL, NULL);
    if (!s_body_names || !s_bodiless_methods || !s_done) return NULL;
    if (!s_type || !s_start || !s_body || !s_body_key || !s_status || !s_headers || !s_more_body || !s_method || !s_head || !s_http || !s_path ||
        !s_start_names)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    /* fields/native.py uses the module only when this matches its INTERFACE: bump both together
       whenever a function is added or its arguments or answers change */
    if (m != NULL && (PyModule_AddIntConstant(m, "INTERFACE", NATIVE_INTERFACE) < 0 ||
                      PyModule_AddObjectRef(m, "Front", (PyObject *)&FrontType) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
