#include "supervisor.h"
typedef int sv__supervisor_placeholder;
