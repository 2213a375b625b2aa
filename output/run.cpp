#include<stdlib.h>
#include "objects.h"
#include<ctime>
#include<random>

#include "code_objects/neurongroup_spike_thresholder_codeobject.h"
#include "code_objects/neurongroup_spike_thresholder_codeobject_1.h"
#include "code_objects/neurongroup_stateupdater_codeobject.h"
#include "code_objects/neurongroup_stateupdater_codeobject_1.h"
#include "code_objects/spikemonitor_codeobject.h"
#include "code_objects/spikemonitor_codeobject_1.h"


void brian_start()
{
	_init_arrays();
	_load_arrays();
	// Initialize clocks (link timestep and dt to the respective arrays)
    brian::neurongroup_clock.timestep = brian::_array_neurongroup_clock_timestep;
    brian::neurongroup_clock.dt = brian::_array_neurongroup_clock_dt;
    brian::neurongroup_clock.t = brian::_array_neurongroup_clock_t;
}

void brian_end()
{
	_write_arrays();
	_dealloc_arrays();
}


