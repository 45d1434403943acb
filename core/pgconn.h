#ifndef SV_CORE_PGCONN_H
#define SV_CORE_PGCONN_H
#endif
