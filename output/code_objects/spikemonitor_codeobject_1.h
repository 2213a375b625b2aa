#ifndef _INCLUDED_spikemonitor_codeobject_1
#define _INCLUDED_spikemonitor_codeobject_1

void _run_spikemonitor_codeobject_1();

void _debugmsg_spikemonitor_codeobject_1();

#endif
