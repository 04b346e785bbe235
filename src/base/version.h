/* version.h — the one version string both programs print. */
#ifndef WSJOBD_VERSION_H
#define WSJOBD_VERSION_H

#define WSJOBD_VERSION "0.1.0"

#endif
