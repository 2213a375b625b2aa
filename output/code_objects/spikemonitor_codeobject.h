#ifndef _INCLUDED_spikemonitor_codeobject
#define _INCLUDED_spikemonitor_codeobject

void _run_spikemonitor_codeobject();

void _debugmsg_spikemonitor_codeobject();

#endif
