

#include "objects.h"
#include "synapses_classes.h"
#include "brianlib/clocks.h"
#include "brianlib/dynamic_array.h"
#include "brianlib/stdint_compat.h"
#include "network.h"
#include<random>
#include<vector>
#include<iostream>
#include<fstream>
#include<map>
#include<tuple>
#include<cstdlib>
#include<string>

namespace brian {

std::string results_dir = "results/";  // can be overwritten by --results_dir command line arg

// For multhreading, we need one generator for each thread. We also create a distribution for
// each thread, even though this is not strictly necessary for the uniform distribution, as
// the distribution is stateless.
std::vector< RandomGenerator > _random_generators;

//////////////// networks /////////////////
Network network;

void set_variable_from_value(std::string varname, char* var_pointer, size_t size, char value) {
    #ifdef DEBUG
    std::cout << "Setting '" << varname << "' to " << (value == 1 ? "True" : "False") << std::endl;
    #endif
    std::fill(var_pointer, var_pointer+size, value);
}

template<class T> void set_variable_from_value(std::string varname, T* var_pointer, size_t size, T value) {
    #ifdef DEBUG
    std::cout << "Setting '" << varname << "' to " << value << std::endl;
    #endif
    std::fill(var_pointer, var_pointer+size, value);
}

template<class T> void set_variable_from_file(std::string varname, T* var_pointer, size_t data_size, std::string filename) {
    ifstream f;
    streampos size;
    #ifdef DEBUG
    std::cout << "Setting '" << varname << "' from file '" << filename << "'" << std::endl;
    #endif
    f.open(filename, ios::in | ios::binary | ios::ate);
    size = f.tellg();
    if (size != data_size) {
        std::cerr << "Error reading '" << filename << "': file size " << size << " does not match expected size " << data_size << std::endl;
        return;
    }
    f.seekg(0, ios::beg);
    if (f.is_open())
        f.read(reinterpret_cast<char *>(var_pointer), data_size);
    else
        std::cerr << "Could not read '" << filename << "'" << std::endl;
    if (f.fail())
        std::cerr << "Error reading '" << filename << "'" << std::endl;
}

//////////////// set arrays by name ///////
void set_variable_by_name(std::string name, std::string s_value) {
    size_t var_size;
    size_t data_size;
    // C-style or Python-style capitalization is allowed for boolean values
    if (s_value == "true" || s_value == "True")
        s_value = "1";
    else if (s_value == "false" || s_value == "False")
        s_value = "0";
    // non-dynamic arrays
    if (name == "neurongroup._spikespace") {
        var_size = 4;
        data_size = 4*sizeof(int32_t);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<int32_t>(name, _array_neurongroup__spikespace, var_size, (int32_t)atoi(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup__spikespace, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.hka") {
        var_size = 3;
        data_size = 3*sizeof(double);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<double>(name, _array_neurongroup_hka, var_size, (double)atof(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_hka, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.hks") {
        var_size = 3;
        data_size = 3*sizeof(double);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<double>(name, _array_neurongroup_hks, var_size, (double)atof(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_hks, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.hnaf") {
        var_size = 3;
        data_size = 3*sizeof(double);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<double>(name, _array_neurongroup_hnaf, var_size, (double)atof(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_hnaf, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.hnas") {
        var_size = 3;
        data_size = 3*sizeof(double);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<double>(name, _array_neurongroup_hnas, var_size, (double)atof(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_hnas, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.Iapp") {
        var_size = 3;
        data_size = 3*sizeof(double);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<double>(name, _array_neurongroup_Iapp, var_size, (double)atof(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_Iapp, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.lastspike") {
        var_size = 3;
        data_size = 3*sizeof(double);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<double>(name, _array_neurongroup_lastspike, var_size, (double)atof(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_lastspike, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.mka") {
        var_size = 3;
        data_size = 3*sizeof(double);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<double>(name, _array_neurongroup_mka, var_size, (double)atof(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_mka, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.mks") {
        var_size = 3;
        data_size = 3*sizeof(double);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<double>(name, _array_neurongroup_mks, var_size, (double)atof(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_mks, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.mkv") {
        var_size = 3;
        data_size = 3*sizeof(double);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<double>(name, _array_neurongroup_mkv, var_size, (double)atof(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_mkv, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.mnaf") {
        var_size = 3;
        data_size = 3*sizeof(double);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<double>(name, _array_neurongroup_mnaf, var_size, (double)atof(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_mnaf, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.mnas") {
        var_size = 3;
        data_size = 3*sizeof(double);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<double>(name, _array_neurongroup_mnas, var_size, (double)atof(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_mnas, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.not_refractory") {
        var_size = 3;
        data_size = 3*sizeof(char);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value(name, _array_neurongroup_not_refractory, var_size, (char)atoi(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_not_refractory, data_size, s_value);
        }
        return;
    }
    if (name == "neurongroup.v") {
        var_size = 3;
        data_size = 3*sizeof(double);
        if (s_value[0] == '-' || (s_value[0] >= '0' && s_value[0] <= '9')) {
            // set from single value
            set_variable_from_value<double>(name, _array_neurongroup_v, var_size, (double)atof(s_value.c_str()));

        } else {
            // set from file
            set_variable_from_file(name, _array_neurongroup_v, data_size, s_value);
        }
        return;
    }
    // dynamic arrays (1d)
    std::cerr << "Cannot set unknown variable '" << name << "'." << std::endl;
    exit(1);
}
//////////////// arrays ///////////////////
double * _array_defaultclock_dt;
const int _num__array_defaultclock_dt = 1;
double * _array_defaultclock_t;
const int _num__array_defaultclock_t = 1;
int64_t * _array_defaultclock_timestep;
const int _num__array_defaultclock_timestep = 1;
int32_t * _array_neurongroup__spikespace;
const int _num__array_neurongroup__spikespace = 4;
double * _array_neurongroup_clock_dt;
const int _num__array_neurongroup_clock_dt = 1;
double * _array_neurongroup_clock_t;
const int _num__array_neurongroup_clock_t = 1;
int64_t * _array_neurongroup_clock_timestep;
const int _num__array_neurongroup_clock_timestep = 1;
double * _array_neurongroup_hka;
const int _num__array_neurongroup_hka = 3;
double * _array_neurongroup_hks;
const int _num__array_neurongroup_hks = 3;
double * _array_neurongroup_hnaf;
const int _num__array_neurongroup_hnaf = 3;
double * _array_neurongroup_hnas;
const int _num__array_neurongroup_hnas = 3;
int32_t * _array_neurongroup_i;
const int _num__array_neurongroup_i = 3;
double * _array_neurongroup_Iapp;
const int _num__array_neurongroup_Iapp = 3;
double * _array_neurongroup_lastspike;
const int _num__array_neurongroup_lastspike = 3;
double * _array_neurongroup_mka;
const int _num__array_neurongroup_mka = 3;
double * _array_neurongroup_mks;
const int _num__array_neurongroup_mks = 3;
double * _array_neurongroup_mkv;
const int _num__array_neurongroup_mkv = 3;
double * _array_neurongroup_mnaf;
const int _num__array_neurongroup_mnaf = 3;
double * _array_neurongroup_mnas;
const int _num__array_neurongroup_mnas = 3;
char * _array_neurongroup_not_refractory;
const int _num__array_neurongroup_not_refractory = 3;
double * _array_neurongroup_v;
const int _num__array_neurongroup_v = 3;
int32_t * _array_spikemonitor__source_idx;
const int _num__array_spikemonitor__source_idx = 3;
int32_t * _array_spikemonitor_count;
const int _num__array_spikemonitor_count = 3;
int32_t * _array_spikemonitor_N;
const int _num__array_spikemonitor_N = 1;

//////////////// dynamic arrays 1d /////////
std::vector<int32_t> _dynamic_array_spikemonitor_i;
std::vector<double> _dynamic_array_spikemonitor_t;

//////////////// dynamic arrays 2d /////////

/////////////// static arrays /////////////

//////////////// synapses /////////////////

//////////////// clocks ///////////////////
Clock neurongroup_clock;  // attributes will be set in run.cpp

// Profiling information for each code object
}

void _init_arrays()
{
    using namespace brian;

    // Arrays initialized to 0
    _array_defaultclock_dt = new double[1];
    
    for(int i=0; i<1; i++) _array_defaultclock_dt[i] = 0;

    _array_defaultclock_t = new double[1];
    
    for(int i=0; i<1; i++) _array_defaultclock_t[i] = 0;

    _array_defaultclock_timestep = new int64_t[1];
    
    for(int i=0; i<1; i++) _array_defaultclock_timestep[i] = 0;

    _array_neurongroup__spikespace = new int32_t[4];
    
    for(int i=0; i<4; i++) _array_neurongroup__spikespace[i] = 0;

    _array_neurongroup_clock_dt = new double[1];
    
    for(int i=0; i<1; i++) _array_neurongroup_clock_dt[i] = 0;

    _array_neurongroup_clock_t = new double[1];
    
    for(int i=0; i<1; i++) _array_neurongroup_clock_t[i] = 0;

    _array_neurongroup_clock_timestep = new int64_t[1];
    
    for(int i=0; i<1; i++) _array_neurongroup_clock_timestep[i] = 0;

    _array_neurongroup_hka = new double[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_hka[i] = 0;

    _array_neurongroup_hks = new double[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_hks[i] = 0;

    _array_neurongroup_hnaf = new double[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_hnaf[i] = 0;

    _array_neurongroup_hnas = new double[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_hnas[i] = 0;

    _array_neurongroup_i = new int32_t[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_i[i] = 0;

    _array_neurongroup_Iapp = new double[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_Iapp[i] = 0;

    _array_neurongroup_lastspike = new double[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_lastspike[i] = 0;

    _array_neurongroup_mka = new double[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_mka[i] = 0;

    _array_neurongroup_mks = new double[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_mks[i] = 0;

    _array_neurongroup_mkv = new double[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_mkv[i] = 0;

    _array_neurongroup_mnaf = new double[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_mnaf[i] = 0;

    _array_neurongroup_mnas = new double[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_mnas[i] = 0;

    _array_neurongroup_not_refractory = new char[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_not_refractory[i] = 0;

    _array_neurongroup_v = new double[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_v[i] = 0;

    _array_spikemonitor__source_idx = new int32_t[3];
    
    for(int i=0; i<3; i++) _array_spikemonitor__source_idx[i] = 0;

    _array_spikemonitor_count = new int32_t[3];
    
    for(int i=0; i<3; i++) _array_spikemonitor_count[i] = 0;

    _array_spikemonitor_N = new int32_t[1];
    
    for(int i=0; i<1; i++) _array_spikemonitor_N[i] = 0;


    // Arrays initialized to an "arange"
    _array_neurongroup_i = new int32_t[3];
    
    for(int i=0; i<3; i++) _array_neurongroup_i[i] = 0 + i;

    _array_spikemonitor__source_idx = new int32_t[3];
    
    for(int i=0; i<3; i++) _array_spikemonitor__source_idx[i] = 0 + i;


    // static arrays

    // Random number generator states
    std::random_device rd;
    for (int i=0; i<1; i++)
        _random_generators.push_back(RandomGenerator());
}

void _load_arrays()
{
    using namespace brian;

}

void _write_arrays()
{
    using namespace brian;

    ofstream outfile__array_defaultclock_dt;
    outfile__array_defaultclock_dt.open(results_dir + "_array_defaultclock_dt_1978099143", ios::binary | ios::out);
    if(outfile__array_defaultclock_dt.is_open())
    {
        outfile__array_defaultclock_dt.write(reinterpret_cast<char*>(_array_defaultclock_dt), 1*sizeof(_array_defaultclock_dt[0]));
        outfile__array_defaultclock_dt.close();
    } else
    {
        std::cout << "Error writing output file for _array_defaultclock_dt." << endl;
    }
    ofstream outfile__array_defaultclock_t;
    outfile__array_defaultclock_t.open(results_dir + "_array_defaultclock_t_2669362164", ios::binary | ios::out);
    if(outfile__array_defaultclock_t.is_open())
    {
        outfile__array_defaultclock_t.write(reinterpret_cast<char*>(_array_defaultclock_t), 1*sizeof(_array_defaultclock_t[0]));
        outfile__array_defaultclock_t.close();
    } else
    {
        std::cout << "Error writing output file for _array_defaultclock_t." << endl;
    }
    ofstream outfile__array_defaultclock_timestep;
    outfile__array_defaultclock_timestep.open(results_dir + "_array_defaultclock_timestep_144223508", ios::binary | ios::out);
    if(outfile__array_defaultclock_timestep.is_open())
    {
        outfile__array_defaultclock_timestep.write(reinterpret_cast<char*>(_array_defaultclock_timestep), 1*sizeof(_array_defaultclock_timestep[0]));
        outfile__array_defaultclock_timestep.close();
    } else
    {
        std::cout << "Error writing output file for _array_defaultclock_timestep." << endl;
    }
    ofstream outfile__array_neurongroup__spikespace;
    outfile__array_neurongroup__spikespace.open(results_dir + "_array_neurongroup__spikespace_3522821529", ios::binary | ios::out);
    if(outfile__array_neurongroup__spikespace.is_open())
    {
        outfile__array_neurongroup__spikespace.write(reinterpret_cast<char*>(_array_neurongroup__spikespace), 4*sizeof(_array_neurongroup__spikespace[0]));
        outfile__array_neurongroup__spikespace.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup__spikespace." << endl;
    }
    ofstream outfile__array_neurongroup_clock_dt;
    outfile__array_neurongroup_clock_dt.open(results_dir + "_array_neurongroup_clock_dt_2115120916", ios::binary | ios::out);
    if(outfile__array_neurongroup_clock_dt.is_open())
    {
        outfile__array_neurongroup_clock_dt.write(reinterpret_cast<char*>(_array_neurongroup_clock_dt), 1*sizeof(_array_neurongroup_clock_dt[0]));
        outfile__array_neurongroup_clock_dt.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_clock_dt." << endl;
    }
    ofstream outfile__array_neurongroup_clock_t;
    outfile__array_neurongroup_clock_t.open(results_dir + "_array_neurongroup_clock_t_2978924859", ios::binary | ios::out);
    if(outfile__array_neurongroup_clock_t.is_open())
    {
        outfile__array_neurongroup_clock_t.write(reinterpret_cast<char*>(_array_neurongroup_clock_t), 1*sizeof(_array_neurongroup_clock_t[0]));
        outfile__array_neurongroup_clock_t.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_clock_t." << endl;
    }
    ofstream outfile__array_neurongroup_clock_timestep;
    outfile__array_neurongroup_clock_timestep.open(results_dir + "_array_neurongroup_clock_timestep_865896969", ios::binary | ios::out);
    if(outfile__array_neurongroup_clock_timestep.is_open())
    {
        outfile__array_neurongroup_clock_timestep.write(reinterpret_cast<char*>(_array_neurongroup_clock_timestep), 1*sizeof(_array_neurongroup_clock_timestep[0]));
        outfile__array_neurongroup_clock_timestep.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_clock_timestep." << endl;
    }
    ofstream outfile__array_neurongroup_hka;
    outfile__array_neurongroup_hka.open(results_dir + "_array_neurongroup_hka_228482127", ios::binary | ios::out);
    if(outfile__array_neurongroup_hka.is_open())
    {
        outfile__array_neurongroup_hka.write(reinterpret_cast<char*>(_array_neurongroup_hka), 3*sizeof(_array_neurongroup_hka[0]));
        outfile__array_neurongroup_hka.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_hka." << endl;
    }
    ofstream outfile__array_neurongroup_hks;
    outfile__array_neurongroup_hks.open(results_dir + "_array_neurongroup_hks_4263980295", ios::binary | ios::out);
    if(outfile__array_neurongroup_hks.is_open())
    {
        outfile__array_neurongroup_hks.write(reinterpret_cast<char*>(_array_neurongroup_hks), 3*sizeof(_array_neurongroup_hks[0]));
        outfile__array_neurongroup_hks.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_hks." << endl;
    }
    ofstream outfile__array_neurongroup_hnaf;
    outfile__array_neurongroup_hnaf.open(results_dir + "_array_neurongroup_hnaf_2524326742", ios::binary | ios::out);
    if(outfile__array_neurongroup_hnaf.is_open())
    {
        outfile__array_neurongroup_hnaf.write(reinterpret_cast<char*>(_array_neurongroup_hnaf), 3*sizeof(_array_neurongroup_hnaf[0]));
        outfile__array_neurongroup_hnaf.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_hnaf." << endl;
    }
    ofstream outfile__array_neurongroup_hnas;
    outfile__array_neurongroup_hnas.open(results_dir + "_array_neurongroup_hnas_4222341053", ios::binary | ios::out);
    if(outfile__array_neurongroup_hnas.is_open())
    {
        outfile__array_neurongroup_hnas.write(reinterpret_cast<char*>(_array_neurongroup_hnas), 3*sizeof(_array_neurongroup_hnas[0]));
        outfile__array_neurongroup_hnas.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_hnas." << endl;
    }
    ofstream outfile__array_neurongroup_i;
    outfile__array_neurongroup_i.open(results_dir + "_array_neurongroup_i_2649026944", ios::binary | ios::out);
    if(outfile__array_neurongroup_i.is_open())
    {
        outfile__array_neurongroup_i.write(reinterpret_cast<char*>(_array_neurongroup_i), 3*sizeof(_array_neurongroup_i[0]));
        outfile__array_neurongroup_i.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_i." << endl;
    }
    ofstream outfile__array_neurongroup_Iapp;
    outfile__array_neurongroup_Iapp.open(results_dir + "_array_neurongroup_Iapp_581513841", ios::binary | ios::out);
    if(outfile__array_neurongroup_Iapp.is_open())
    {
        outfile__array_neurongroup_Iapp.write(reinterpret_cast<char*>(_array_neurongroup_Iapp), 3*sizeof(_array_neurongroup_Iapp[0]));
        outfile__array_neurongroup_Iapp.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_Iapp." << endl;
    }
    ofstream outfile__array_neurongroup_lastspike;
    outfile__array_neurongroup_lastspike.open(results_dir + "_array_neurongroup_lastspike_1647074423", ios::binary | ios::out);
    if(outfile__array_neurongroup_lastspike.is_open())
    {
        outfile__array_neurongroup_lastspike.write(reinterpret_cast<char*>(_array_neurongroup_lastspike), 3*sizeof(_array_neurongroup_lastspike[0]));
        outfile__array_neurongroup_lastspike.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_lastspike." << endl;
    }
    ofstream outfile__array_neurongroup_mka;
    outfile__array_neurongroup_mka.open(results_dir + "_array_neurongroup_mka_190160548", ios::binary | ios::out);
    if(outfile__array_neurongroup_mka.is_open())
    {
        outfile__array_neurongroup_mka.write(reinterpret_cast<char*>(_array_neurongroup_mka), 3*sizeof(_array_neurongroup_mka[0]));
        outfile__array_neurongroup_mka.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_mka." << endl;
    }
    ofstream outfile__array_neurongroup_mks;
    outfile__array_neurongroup_mks.open(results_dir + "_array_neurongroup_mks_4176277484", ios::binary | ios::out);
    if(outfile__array_neurongroup_mks.is_open())
    {
        outfile__array_neurongroup_mks.write(reinterpret_cast<char*>(_array_neurongroup_mks), 3*sizeof(_array_neurongroup_mks[0]));
        outfile__array_neurongroup_mks.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_mks." << endl;
    }
    ofstream outfile__array_neurongroup_mkv;
    outfile__array_neurongroup_mkv.open(results_dir + "_array_neurongroup_mkv_2290490211", ios::binary | ios::out);
    if(outfile__array_neurongroup_mkv.is_open())
    {
        outfile__array_neurongroup_mkv.write(reinterpret_cast<char*>(_array_neurongroup_mkv), 3*sizeof(_array_neurongroup_mkv[0]));
        outfile__array_neurongroup_mkv.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_mkv." << endl;
    }
    ofstream outfile__array_neurongroup_mnaf;
    outfile__array_neurongroup_mnaf.open(results_dir + "_array_neurongroup_mnaf_2712197988", ios::binary | ios::out);
    if(outfile__array_neurongroup_mnaf.is_open())
    {
        outfile__array_neurongroup_mnaf.write(reinterpret_cast<char*>(_array_neurongroup_mnaf), 3*sizeof(_array_neurongroup_mnaf[0]));
        outfile__array_neurongroup_mnaf.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_mnaf." << endl;
    }
    ofstream outfile__array_neurongroup_mnas;
    outfile__array_neurongroup_mnas.open(results_dir + "_array_neurongroup_mnas_3430236047", ios::binary | ios::out);
    if(outfile__array_neurongroup_mnas.is_open())
    {
        outfile__array_neurongroup_mnas.write(reinterpret_cast<char*>(_array_neurongroup_mnas), 3*sizeof(_array_neurongroup_mnas[0]));
        outfile__array_neurongroup_mnas.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_mnas." << endl;
    }
    ofstream outfile__array_neurongroup_not_refractory;
    outfile__array_neurongroup_not_refractory.open(results_dir + "_array_neurongroup_not_refractory_1422681464", ios::binary | ios::out);
    if(outfile__array_neurongroup_not_refractory.is_open())
    {
        outfile__array_neurongroup_not_refractory.write(reinterpret_cast<char*>(_array_neurongroup_not_refractory), 3*sizeof(_array_neurongroup_not_refractory[0]));
        outfile__array_neurongroup_not_refractory.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_not_refractory." << endl;
    }
    ofstream outfile__array_neurongroup_v;
    outfile__array_neurongroup_v.open(results_dir + "_array_neurongroup_v_283966581", ios::binary | ios::out);
    if(outfile__array_neurongroup_v.is_open())
    {
        outfile__array_neurongroup_v.write(reinterpret_cast<char*>(_array_neurongroup_v), 3*sizeof(_array_neurongroup_v[0]));
        outfile__array_neurongroup_v.close();
    } else
    {
        std::cout << "Error writing output file for _array_neurongroup_v." << endl;
    }
    ofstream outfile__array_spikemonitor__source_idx;
    outfile__array_spikemonitor__source_idx.open(results_dir + "_array_spikemonitor__source_idx_1477951789", ios::binary | ios::out);
    if(outfile__array_spikemonitor__source_idx.is_open())
    {
        outfile__array_spikemonitor__source_idx.write(reinterpret_cast<char*>(_array_spikemonitor__source_idx), 3*sizeof(_array_spikemonitor__source_idx[0]));
        outfile__array_spikemonitor__source_idx.close();
    } else
    {
        std::cout << "Error writing output file for _array_spikemonitor__source_idx." << endl;
    }
    ofstream outfile__array_spikemonitor_count;
    outfile__array_spikemonitor_count.open(results_dir + "_array_spikemonitor_count_598337445", ios::binary | ios::out);
    if(outfile__array_spikemonitor_count.is_open())
    {
        outfile__array_spikemonitor_count.write(reinterpret_cast<char*>(_array_spikemonitor_count), 3*sizeof(_array_spikemonitor_count[0]));
        outfile__array_spikemonitor_count.close();
    } else
    {
        std::cout << "Error writing output file for _array_spikemonitor_count." << endl;
    }
    ofstream outfile__array_spikemonitor_N;
    outfile__array_spikemonitor_N.open(results_dir + "_array_spikemonitor_N_225734567", ios::binary | ios::out);
    if(outfile__array_spikemonitor_N.is_open())
    {
        outfile__array_spikemonitor_N.write(reinterpret_cast<char*>(_array_spikemonitor_N), 1*sizeof(_array_spikemonitor_N[0]));
        outfile__array_spikemonitor_N.close();
    } else
    {
        std::cout << "Error writing output file for _array_spikemonitor_N." << endl;
    }

    ofstream outfile__dynamic_array_spikemonitor_i;
    outfile__dynamic_array_spikemonitor_i.open(results_dir + "_dynamic_array_spikemonitor_i_1976709050", ios::binary | ios::out);
    if(outfile__dynamic_array_spikemonitor_i.is_open())
    {
        if (! _dynamic_array_spikemonitor_i.empty() )
        {
            outfile__dynamic_array_spikemonitor_i.write(reinterpret_cast<char*>(&_dynamic_array_spikemonitor_i[0]), _dynamic_array_spikemonitor_i.size()*sizeof(_dynamic_array_spikemonitor_i[0]));
            outfile__dynamic_array_spikemonitor_i.close();
        }
    } else
    {
        std::cout << "Error writing output file for _dynamic_array_spikemonitor_i." << endl;
    }
    ofstream outfile__dynamic_array_spikemonitor_t;
    outfile__dynamic_array_spikemonitor_t.open(results_dir + "_dynamic_array_spikemonitor_t_383009635", ios::binary | ios::out);
    if(outfile__dynamic_array_spikemonitor_t.is_open())
    {
        if (! _dynamic_array_spikemonitor_t.empty() )
        {
            outfile__dynamic_array_spikemonitor_t.write(reinterpret_cast<char*>(&_dynamic_array_spikemonitor_t[0]), _dynamic_array_spikemonitor_t.size()*sizeof(_dynamic_array_spikemonitor_t[0]));
            outfile__dynamic_array_spikemonitor_t.close();
        }
    } else
    {
        std::cout << "Error writing output file for _dynamic_array_spikemonitor_t." << endl;
    }

    // Write last run info to disk
    ofstream outfile_last_run_info;
    outfile_last_run_info.open(results_dir + "last_run_info.txt", ios::out);
    if(outfile_last_run_info.is_open())
    {
        outfile_last_run_info << (Network::_last_run_time) << " " << (Network::_last_run_completed_fraction) << std::endl;
        outfile_last_run_info.close();
    } else
    {
        std::cout << "Error writing last run info to file." << std::endl;
    }
}

void _dealloc_arrays()
{
    using namespace brian;


    // static arrays
}

