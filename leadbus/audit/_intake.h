/* What `_intake.c` and `_intake_run.c` (one extension, `leadbus.audit._intake`) share; hidden from other libraries. */
#ifndef LEADBUS_INTAKE_H
#define LEADBUS_INTAKE_H

#include <Python.h>

#define INTAKE_SHARED __attribute__((visibility("hidden")))

/* _intake.c */
INTAKE_SHARED extern PyObject *zero;    /* 0 */
INTAKE_SHARED extern PyObject *s_lower; /* "lower" */
INTAKE_SHARED PyObject *lowered(PyObject *text); /* an exact str's lower(), itself when nothing is to lower */
INTAKE_SHARED int seal_link(PyObject *const r[], PyObject *lead, PyObject *signers, PyObject *covers, PyObject *runs,
                            Py_ssize_t window, PyObject **link_out, PyObject **lane_out, PyObject **run_out,
                            int *follows_out, PyObject **publisher_out);
INTAKE_SHARED PyObject *peek_head(PyObject *value, PyTypeObject *cls);
INTAKE_SHARED int sha256_into(PyObject *value, unsigned char *digest); /* bytes `value`: 1, or 0 (OpenSSL failed) */

/* _intake_run.c */
INTAKE_SHARED PyObject *plain_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
INTAKE_SHARED int plain_run_ready(void); /* at the module's init: 1, or 0 with an error set */

#endif
