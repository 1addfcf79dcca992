/*  tako_version — the release version of tako-vm.  */
#ifndef TAKO_VERSION_H_INCLUDED
#define TAKO_VERSION_H_INCLUDED
#define TAKO_VERSION "0.1.0"
#endif
