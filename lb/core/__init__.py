"""The C core as Python sees it: `Core` (lb/core/core.py) owns one `lb_core *`; the other modules of this
package (conn.py, batch.py) reach `lib` only through a Core."""
