#include "pgconn.h"
typedef int sv__pgconn_placeholder;
