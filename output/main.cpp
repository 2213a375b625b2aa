#include <stdlib.h>
#include "objects.h"
#include <csignal>
#include <ctime>
#include <time.h>

#include "run.h"
#include "brianlib/common_math.h"

#include "code_objects/neurongroup_spike_thresholder_codeobject.h"
#include "code_objects/after_run_neurongroup_spike_thresholder_codeobject.h"
#include "code_objects/neurongroup_spike_thresholder_codeobject_1.h"
#include "code_objects/after_run_neurongroup_spike_thresholder_codeobject_1.h"
#include "code_objects/neurongroup_stateupdater_codeobject.h"
#include "code_objects/neurongroup_stateupdater_codeobject_1.h"
#include "code_objects/spikemonitor_codeobject.h"
#include "code_objects/spikemonitor_codeobject_1.h"


#include <iostream>
#include <fstream>
#include <string>




void set_from_command_line(const std::vector<std::string> args)
{
    for (const auto& arg : args) {
		// Split into two parts
		size_t equal_sign = arg.find("=");
		auto name = arg.substr(0, equal_sign);
		auto value = arg.substr(equal_sign + 1, arg.length());
		brian::set_variable_by_name(name, value);
	}
}

void _int_handler(int signal_num) {
	if (Network::_globally_running && !Network::_globally_stopped) {
		Network::_globally_stopped = true;
	} else {
		std::signal(signal_num, SIG_DFL);
		std::raise(signal_num);
	}
}

int main(int argc, char **argv)
{
	std::signal(SIGINT, _int_handler);
	std::random_device _rd;
	std::vector<std::string> args(argv + 1, argv + argc);
	if (args.size() >=2 && args[0] == "--results_dir")
	{
		brian::results_dir = args[1];
		#ifdef DEBUG
		std::cout << "Setting results dir to '" << brian::results_dir << "'" << std::endl;
		#endif
		args.erase(args.begin(), args.begin()+2);
	}
        

	brian_start();
        

	{
		using namespace brian;

		
                
        _array_defaultclock_dt[0] = 0.0001;
        _array_defaultclock_dt[0] = 0.0001;
        _array_defaultclock_dt[0] = 0.0001;
        _array_neurongroup_clock_dt[0] = 1e-05;
        _array_neurongroup_clock_dt[0] = 1e-05;
        
                        
                        for(int i=0; i<_num__array_neurongroup_lastspike; i++)
                        {
                            _array_neurongroup_lastspike[i] = - 10000.0;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_not_refractory; i++)
                        {
                            _array_neurongroup_not_refractory[i] = true;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_v; i++)
                        {
                            _array_neurongroup_v[i] = - 0.065;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_hnaf; i++)
                        {
                            _array_neurongroup_hnaf[i] = 1;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_hnas; i++)
                        {
                            _array_neurongroup_hnas[i] = 1;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_hks; i++)
                        {
                            _array_neurongroup_hks[i] = 1;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_hka; i++)
                        {
                            _array_neurongroup_hka[i] = 1;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_mnaf; i++)
                        {
                            _array_neurongroup_mnaf[i] = 0;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_mnas; i++)
                        {
                            _array_neurongroup_mnas[i] = 0;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_mks; i++)
                        {
                            _array_neurongroup_mks[i] = 0;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_mka; i++)
                        {
                            _array_neurongroup_mka[i] = 0;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_mkv; i++)
                        {
                            _array_neurongroup_mkv[i] = 0;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_Iapp; i++)
                        {
                            _array_neurongroup_Iapp[i] = 0.0;
                        }
                        
        
                        
                        for(int i=0; i<_num__array_neurongroup_Iapp; i++)
                        {
                            _array_neurongroup_Iapp[i] = 0.0;
                        }
                        
        _array_neurongroup_clock_timestep[0] = 0;
        _array_neurongroup_clock_t[0] = 0.0;
        network.clear();
        network.add(&neurongroup_clock, _run_neurongroup_stateupdater_codeobject);
        network.add(&neurongroup_clock, _run_neurongroup_spike_thresholder_codeobject);
        network.add(&neurongroup_clock, _run_spikemonitor_codeobject);
        set_from_command_line(args);
        network.run(0.05, NULL, 10.0);
        _after_run_neurongroup_spike_thresholder_codeobject();
        
                        
                        for(int i=0; i<_num__array_neurongroup_Iapp; i++)
                        {
                            _array_neurongroup_Iapp[i] = 1.8e-11;
                        }
                        
        _array_neurongroup_clock_timestep[0] = 5000;
        _array_neurongroup_clock_t[0] = 0.05;
        network.clear();
        network.add(&neurongroup_clock, _run_neurongroup_stateupdater_codeobject_1);
        network.add(&neurongroup_clock, _run_neurongroup_spike_thresholder_codeobject_1);
        network.add(&neurongroup_clock, _run_spikemonitor_codeobject_1);
        network.run(0.3, NULL, 10.0);
        _after_run_neurongroup_spike_thresholder_codeobject_1();
        #ifdef DEBUG
        _debugmsg_spikemonitor_codeobject();
        #endif
        
        #ifdef DEBUG
        _debugmsg_spikemonitor_codeobject_1();
        #endif

	}
        

	brian_end();
        

	return 0;
}