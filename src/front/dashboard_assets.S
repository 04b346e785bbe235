/* dashboard_assets.S — the dashboard's sources (src/front/dashboard/),
 * built into the binary as they are in the tree: nothing is read from disk
 * at run time.  Each file is a start and an end symbol (dashboard_page.c).
 * The paths are relative to the top of the tree, where make runs; the
 * Makefile names these files as this object's prerequisites. */
#define ASSET(name, path)              \
    .global name, name##_end;          \
    .balign 16;                        \
name:                                  \
    .incbin path;                      \
name##_end:                            \
    .byte 0

    .section .rodata
ASSET(dashboard_html, "src/front/dashboard/index.html")
ASSET(dashboard_js, "src/front/dashboard/app.js")
ASSET(dashboard_css, "src/front/dashboard/style.css")

    /* No executable stack for the program that links this. */
    .section .note.GNU-stack,"",@progbits
