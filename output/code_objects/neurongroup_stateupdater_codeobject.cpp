#include "code_objects/neurongroup_stateupdater_codeobject.h"
#include "objects.h"
#include "brianlib/common_math.h"
#include "brianlib/stdint_compat.h"
#include<cmath>
#include<ctime>
#include<iostream>
#include<fstream>
#include<climits>

////// SUPPORT CODE ///////
namespace {
        
    template < typename T1, typename T2 > struct _higher_type;
    template < > struct _higher_type<int32_t,int32_t> { typedef int32_t type; };
    template < > struct _higher_type<int32_t,int64_t> { typedef int64_t type; };
    template < > struct _higher_type<int32_t,float> { typedef float type; };
    template < > struct _higher_type<int32_t,double> { typedef double type; };
    template < > struct _higher_type<int32_t,long double> { typedef long double type; };
    template < > struct _higher_type<int64_t,int32_t> { typedef int64_t type; };
    template < > struct _higher_type<int64_t,int64_t> { typedef int64_t type; };
    template < > struct _higher_type<int64_t,float> { typedef float type; };
    template < > struct _higher_type<int64_t,double> { typedef double type; };
    template < > struct _higher_type<int64_t,long double> { typedef long double type; };
    template < > struct _higher_type<float,int32_t> { typedef float type; };
    template < > struct _higher_type<float,int64_t> { typedef float type; };
    template < > struct _higher_type<float,float> { typedef float type; };
    template < > struct _higher_type<float,double> { typedef double type; };
    template < > struct _higher_type<float,long double> { typedef long double type; };
    template < > struct _higher_type<double,int32_t> { typedef double type; };
    template < > struct _higher_type<double,int64_t> { typedef double type; };
    template < > struct _higher_type<double,float> { typedef double type; };
    template < > struct _higher_type<double,double> { typedef double type; };
    template < > struct _higher_type<double,long double> { typedef long double type; };
    template < > struct _higher_type<long double,int32_t> { typedef long double type; };
    template < > struct _higher_type<long double,int64_t> { typedef long double type; };
    template < > struct _higher_type<long double,float> { typedef long double type; };
    template < > struct _higher_type<long double,double> { typedef long double type; };
    template < > struct _higher_type<long double,long double> { typedef long double type; };
    // General template, used for floating point types
    template < typename T1, typename T2 >
    static inline typename _higher_type<T1,T2>::type
    _brian_mod(T1 x, T2 y)
    {
        return x-y*floor(1.0*x/y);
    }
    // Specific implementations for integer types
    // (from Cython, see LICENSE file)
    template <>
    inline int32_t _brian_mod(int32_t x, int32_t y)
    {
        int32_t r = x % y;
        r += ((r != 0) & ((r ^ y) < 0)) * y;
        return r;
    }
    template <>
    inline int64_t _brian_mod(int32_t x, int64_t y)
    {
        int64_t r = x % y;
        r += ((r != 0) & ((r ^ y) < 0)) * y;
        return r;
    }
    template <>
    inline int64_t _brian_mod(int64_t x, int32_t y)
    {
        int64_t r = x % y;
        r += ((r != 0) & ((r ^ y) < 0)) * y;
        return r;
    }
    template <>
    inline int64_t _brian_mod(int64_t x, int64_t y)
    {
        int64_t r = x % y;
        r += ((r != 0) & ((r ^ y) < 0)) * y;
        return r;
    }
    // General implementation, used for floating point types
    template < typename T1, typename T2 >
    static inline typename _higher_type<T1,T2>::type
    _brian_floordiv(T1 x, T2 y)
    {{
        return floor(1.0*x/y);
    }}
    // Specific implementations for integer types
    // (from Cython, see LICENSE file)
    template <>
    inline int32_t _brian_floordiv<int32_t, int32_t>(int32_t a, int32_t b) {
        int32_t q = a / b;
        int32_t r = a - q*b;
        q -= ((r != 0) & ((r ^ b) < 0));
        return q;
    }
    template <>
    inline int64_t _brian_floordiv<int32_t, int64_t>(int32_t a, int64_t b) {
        int64_t q = a / b;
        int64_t r = a - q*b;
        q -= ((r != 0) & ((r ^ b) < 0));
        return q;
    }
    template <>
    inline int64_t _brian_floordiv<int64_t, int>(int64_t a, int32_t b) {
        int64_t q = a / b;
        int64_t r = a - q*b;
        q -= ((r != 0) & ((r ^ b) < 0));
        return q;
    }
    template <>
    inline int64_t _brian_floordiv<int64_t, int64_t>(int64_t a, int64_t b) {
        int64_t q = a / b;
        int64_t r = a - q*b;
        q -= ((r != 0) & ((r ^ b) < 0));
        return q;
    }
    #ifdef _MSC_VER
    #define _brian_pow(x, y) (pow((double)(x), (y)))
    #else
    #define _brian_pow(x, y) (pow((x), (y)))
    #endif

}

////// HASH DEFINES ///////



void _run_neurongroup_stateupdater_codeobject()
{
    using namespace brian;


    ///// CONSTANTS ///////////
    const double Cm = 4e-12;
const size_t _numIapp = 3;
const int64_t N = 3;
const size_t _numdt = 1;
const double ek = - 0.081;
const double el = - 0.065;
const double ena = 0.058;
const double gka = 5.8100000000000004e-08;
const double gks = 8.11e-09;
const double gkv = 6.000000000000001e-09;
const double gl = 3.9000000000000005e-10;
const double gnaf = 1.4e-07;
const double gnas = 1.2000000000000002e-08;
const size_t _numhka = 3;
const size_t _numhks = 3;
const size_t _numhnaf = 3;
const size_t _numhnas = 3;
const double mV = 0.001;
const size_t _nummka = 3;
const size_t _nummks = 3;
const size_t _nummkv = 3;
const size_t _nummnaf = 3;
const size_t _nummnas = 3;
const double ms = 0.001;
const size_t _numnot_refractory = 3;
const size_t _numv = 3;
    ///// POINTERS ////////////
        
    double* __restrict  _ptr_array_neurongroup_Iapp = _array_neurongroup_Iapp;
    double*   _ptr_array_neurongroup_clock_dt = _array_neurongroup_clock_dt;
    double* __restrict  _ptr_array_neurongroup_hka = _array_neurongroup_hka;
    double* __restrict  _ptr_array_neurongroup_hks = _array_neurongroup_hks;
    double* __restrict  _ptr_array_neurongroup_hnaf = _array_neurongroup_hnaf;
    double* __restrict  _ptr_array_neurongroup_hnas = _array_neurongroup_hnas;
    double* __restrict  _ptr_array_neurongroup_mka = _array_neurongroup_mka;
    double* __restrict  _ptr_array_neurongroup_mks = _array_neurongroup_mks;
    double* __restrict  _ptr_array_neurongroup_mkv = _array_neurongroup_mkv;
    double* __restrict  _ptr_array_neurongroup_mnaf = _array_neurongroup_mnaf;
    double* __restrict  _ptr_array_neurongroup_mnas = _array_neurongroup_mnas;
    char* __restrict  _ptr_array_neurongroup_not_refractory = _array_neurongroup_not_refractory;
    double* __restrict  _ptr_array_neurongroup_v = _array_neurongroup_v;


    //// MAIN CODE ////////////
    // scalar code
    const size_t _vectorisation_idx = -1;
        
    const double dt = _ptr_array_neurongroup_clock_dt[0];
    const double _lio_1 = (- 20.0) * mV;
    const double _lio_2 = 1.0f*0.14285714285714285/mV;
    const double _lio_3 = 74.7 * mV;
    const double _lio_4 = 2.5 * ms;
    const double _lio_5 = 87.5 * ms;
    const double _lio_6 = 1.0f*0.06666666666666667/mV;
    const double _lio_7 = (- 52.0) * mV;
    const double _lio_8 = 1.0f*0.0625/mV;
    const double _lio_9 = 62.0 * mV;
    const double _lio_10 = 150.0 * ms;
    const double _lio_11 = 50.0 * ms;
    const double _lio_12 = 1.0f*1.0/mV;
    const double _lio_13 = 8.71186440677967 * mV;
    const double _lio_14 = 0.12 * ms;
    const double _lio_15 = 1.54 * ms;
    const double _lio_16 = 0.924050632911389 * mV;
    const double _lio_17 = 1.9 * ms;
    const double _lio_18 = 10.34 * ms;
    const double _lio_19 = 1.0f*0.125/mV;
    const double _lio_20 = 32.6 * mV;
    const double _lio_21 = (- 1.24844720496894) * mV;
    const double _lio_22 = 0.35 * ms;
    const double _lio_23 = 1.3 * ms;
    const double _lio_24 = 1.0f*0.05/mV;
    const double _lio_25 = 1.0f*0.08333333333333333/mV;
    const double _lio_26 = 20.0 * mV;
    const double _lio_27 = 0.5 * ms;
    const double _lio_28 = 4.5 * ms;
    const double _lio_29 = (- 1.38032305433187) * mV;
    const double _lio_30 = 1.85 * ms;
    const double _lio_31 = 1.68 * ms;
    const double _lio_32 = (- 3.28227571115974) * mV;
    const double _lio_33 = (- 4.52631578947368) * mV;
    const double _lio_34 = 0.093 * ms;
    const double _lio_35 = 0.737 * ms;
    const double _lio_36 = 3.14728682170542 * mV;
    const double _lio_37 = 1.0f*dt/Cm;
    const double _lio_38 = - ek;
    const double _lio_39 = - el;
    const double _lio_40 = - ena;
    const double _lio_41 = 0.0 - (52.0 * mV);
    const double _lio_42 = 0.0 - (1.24844720496894 * mV);
    const double _lio_43 = 0.0 - (20.0 * mV);
    const double _lio_44 = 0.0 - (1.38032305433187 * mV);
    const double _lio_45 = 0.0 - (3.28227571115974 * mV);
    const double _lio_46 = 0.0 - (4.52631578947368 * mV);
    const double _lio_47 = 0.0 - ek;
    const double _lio_48 = 0.0 - el;
    const double _lio_49 = 0.0 - ena;


    const int _N = N;
    
    for(int _idx=0; _idx<_N; _idx++)
    {
        // vector code
        const size_t _vectorisation_idx = _idx;
                
        const double Iapp = _ptr_array_neurongroup_Iapp[_idx];
        double hka = _ptr_array_neurongroup_hka[_idx];
        double hks = _ptr_array_neurongroup_hks[_idx];
        double hnaf = _ptr_array_neurongroup_hnaf[_idx];
        double hnas = _ptr_array_neurongroup_hnas[_idx];
        double mka = _ptr_array_neurongroup_mka[_idx];
        double mks = _ptr_array_neurongroup_mks[_idx];
        double mkv = _ptr_array_neurongroup_mkv[_idx];
        double mnaf = _ptr_array_neurongroup_mnaf[_idx];
        double mnas = _ptr_array_neurongroup_mnas[_idx];
        char not_refractory = _ptr_array_neurongroup_not_refractory[_idx];
        double v = _ptr_array_neurongroup_v[_idx];
        if(!not_refractory)
            not_refractory = false || (! (v > _lio_1));
        else 
            not_refractory = true || (! (v > _lio_1));
        const double __k_1_hka = 1.0f*(dt * ((- hka) + (1.0f*1.0/(1.0 + exp(_lio_2 * (_lio_3 + v))))))/(_lio_4 + (1.0f*_lio_5/((1.0 + exp(_lio_6 * (_lio_7 + v))) * (1.0 + exp(_lio_8 * (_lio_9 + v))))));
        const double __k_1_hks = 1.0f*(dt * ((- hks) + (1.0f*1.0/(1.0 + exp(_lio_2 * (_lio_3 + v))))))/(_lio_10 + (1.0f*_lio_11/(1.0 + exp(_lio_6 * (_lio_7 + v)))));
        const double __k_1_hnaf = 1.0f*(dt * ((- hnaf) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_13 + (0.169491525423729 * v)))))))/(_lio_14 + (1.0f*_lio_15/(1.0 + exp(_lio_12 * (_lio_16 + (0.115074798619102 * v))))));
        const double __k_1_hnas = 1.0f*(dt * ((- hnas) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_13 + (0.169491525423729 * v)))))))/(_lio_17 + (1.0f*_lio_18/(1.0 + exp(_lio_19 * (_lio_20 + v)))));
        const double __k_1_mka = 1.0f*(dt * ((- mka) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_21 - (0.062111801242236 * v)))))))/(_lio_22 + (1.0f*_lio_23/((1.0 + exp(_lio_24 * (_lio_1 + v))) * (1.0 + exp(_lio_25 * (_lio_26 + v))))));
        const double __k_1_mks = 1.0f*(dt * ((- mks) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_21 - (0.062111801242236 * v)))))))/(_lio_27 + (1.0f*_lio_28/(1.0 + exp(_lio_24 * (_lio_1 + v)))));
        const double __k_1_mkv = 1.0f*(dt * ((- mkv) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_29 - (0.0367107195301028 * v)))))))/(_lio_30 + (1.0f*_lio_31/(1.0 + exp(_lio_12 * (_lio_32 + (0.0729394602479942 * v))))));
        const double __k_1_mnaf = 1.0f*(dt * ((- mnaf) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_33 - (0.150375939849624 * v)))))))/(_lio_34 + (1.0f*_lio_35/(1.0 + exp(_lio_12 * (_lio_36 + (0.155038759689922 * v))))));
        const double __k_1_mnas = 1.0f*(dt * ((- mnas) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_33 - (0.150375939849624 * v)))))))/(_lio_34 + (1.0f*_lio_35/(1.0 + exp(_lio_12 * (_lio_36 + (0.155038759689922 * v))))));
        const double __k_1_v = _lio_37 * (Iapp - ((((((gka * ((hka * (_brian_pow(mka, 3))) * (_lio_38 + v))) + (gks * ((hks * (_brian_pow(mks, 3))) * (_lio_38 + v)))) + (gkv * ((_brian_pow(mkv, 4)) * (_lio_38 + v)))) + (gl * (_lio_39 + v))) + (gnaf * ((hnaf * (_brian_pow(mnaf, 3))) * (_lio_40 + v)))) + (gnas * ((hnas * (_brian_pow(mnas, 3))) * (_lio_40 + v)))));
        const double __k_2_hka = 1.0f*(dt * (((0.5 * (- __k_1_hka)) + (1.0f*1.0/(1.0 + exp(_lio_2 * (_lio_3 + ((0.5 * __k_1_v) + v)))))) - hka))/(_lio_4 + (1.0f*_lio_5/((1.0 + exp(_lio_6 * (_lio_41 + ((0.5 * __k_1_v) + v)))) * (1.0 + exp(_lio_8 * (_lio_9 + ((0.5 * __k_1_v) + v)))))));
        const double __k_2_hks = 1.0f*(dt * (((0.5 * (- __k_1_hks)) + (1.0f*1.0/(1.0 + exp(_lio_2 * (_lio_3 + ((0.5 * __k_1_v) + v)))))) - hks))/(_lio_10 + (1.0f*_lio_11/(1.0 + exp(_lio_6 * (_lio_41 + ((0.5 * __k_1_v) + v))))));
        const double __k_2_hnaf = 1.0f*(dt * (((0.5 * (- __k_1_hnaf)) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_13 + ((0.0847457627118645 * __k_1_v) + (0.169491525423729 * v))))))) - hnaf))/(_lio_14 + (1.0f*_lio_15/(1.0 + exp(_lio_12 * (_lio_16 + ((0.057537399309551 * __k_1_v) + (0.115074798619102 * v)))))));
        const double __k_2_hnas = 1.0f*(dt * (((0.5 * (- __k_1_hnas)) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_13 + ((0.0847457627118645 * __k_1_v) + (0.169491525423729 * v))))))) - hnas))/(_lio_17 + (1.0f*_lio_18/(1.0 + exp(_lio_19 * (_lio_20 + ((0.5 * __k_1_v) + v))))));
        const double __k_2_mka = 1.0f*(dt * (((0.5 * (- __k_1_mka)) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_42 + ((- 0.031055900621118) * __k_1_v)) - (0.062111801242236 * v)))))) - mka))/(_lio_22 + (1.0f*_lio_23/((1.0 + exp(_lio_24 * (_lio_43 + ((0.5 * __k_1_v) + v)))) * (1.0 + exp(_lio_25 * (_lio_26 + ((0.5 * __k_1_v) + v)))))));
        const double __k_2_mks = 1.0f*(dt * (((0.5 * (- __k_1_mks)) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_42 + ((- 0.031055900621118) * __k_1_v)) - (0.062111801242236 * v)))))) - mks))/(_lio_27 + (1.0f*_lio_28/(1.0 + exp(_lio_24 * (_lio_43 + ((0.5 * __k_1_v) + v))))));
        const double __k_2_mkv = 1.0f*(dt * (((0.5 * (- __k_1_mkv)) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_44 + ((- 0.0183553597650514) * __k_1_v)) - (0.0367107195301028 * v)))))) - mkv))/(_lio_30 + (1.0f*_lio_31/(1.0 + exp(_lio_12 * (_lio_45 + ((0.0364697301239971 * __k_1_v) + (0.0729394602479942 * v)))))));
        const double __k_2_mnaf = 1.0f*(dt * (((0.5 * (- __k_1_mnaf)) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_46 + ((- 0.075187969924812) * __k_1_v)) - (0.150375939849624 * v)))))) - mnaf))/(_lio_34 + (1.0f*_lio_35/(1.0 + exp(_lio_12 * (_lio_36 + ((0.077519379844961 * __k_1_v) + (0.155038759689922 * v)))))));
        const double __k_2_mnas = 1.0f*(dt * (((0.5 * (- __k_1_mnas)) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_46 + ((- 0.075187969924812) * __k_1_v)) - (0.150375939849624 * v)))))) - mnas))/(_lio_34 + (1.0f*_lio_35/(1.0 + exp(_lio_12 * (_lio_36 + ((0.077519379844961 * __k_1_v) + (0.155038759689922 * v)))))));
        const double __k_2_v = _lio_37 * (Iapp - ((((((gka * ((((0.5 * __k_1_hka) + hka) * (_brian_pow((0.5 * __k_1_mka) + mka, 3))) * (_lio_47 + ((0.5 * __k_1_v) + v)))) + (gks * ((((0.5 * __k_1_hks) + hks) * (_brian_pow((0.5 * __k_1_mks) + mks, 3))) * (_lio_47 + ((0.5 * __k_1_v) + v))))) + (gkv * ((_brian_pow((0.5 * __k_1_mkv) + mkv, 4)) * (_lio_47 + ((0.5 * __k_1_v) + v))))) + (gl * (_lio_48 + ((0.5 * __k_1_v) + v)))) + (gnaf * ((((0.5 * __k_1_hnaf) + hnaf) * (_brian_pow((0.5 * __k_1_mnaf) + mnaf, 3))) * (_lio_49 + ((0.5 * __k_1_v) + v))))) + (gnas * ((((0.5 * __k_1_hnas) + hnas) * (_brian_pow((0.5 * __k_1_mnas) + mnas, 3))) * (_lio_49 + ((0.5 * __k_1_v) + v))))));
        const double __k_3_hka = 1.0f*(dt * (((0.5 * (- __k_2_hka)) + (1.0f*1.0/(1.0 + exp(_lio_2 * (_lio_3 + ((0.5 * __k_2_v) + v)))))) - hka))/(_lio_4 + (1.0f*_lio_5/((1.0 + exp(_lio_6 * (_lio_41 + ((0.5 * __k_2_v) + v)))) * (1.0 + exp(_lio_8 * (_lio_9 + ((0.5 * __k_2_v) + v)))))));
        const double __k_3_hks = 1.0f*(dt * (((0.5 * (- __k_2_hks)) + (1.0f*1.0/(1.0 + exp(_lio_2 * (_lio_3 + ((0.5 * __k_2_v) + v)))))) - hks))/(_lio_10 + (1.0f*_lio_11/(1.0 + exp(_lio_6 * (_lio_41 + ((0.5 * __k_2_v) + v))))));
        const double __k_3_hnaf = 1.0f*(dt * (((0.5 * (- __k_2_hnaf)) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_13 + ((0.0847457627118645 * __k_2_v) + (0.169491525423729 * v))))))) - hnaf))/(_lio_14 + (1.0f*_lio_15/(1.0 + exp(_lio_12 * (_lio_16 + ((0.057537399309551 * __k_2_v) + (0.115074798619102 * v)))))));
        const double __k_3_hnas = 1.0f*(dt * (((0.5 * (- __k_2_hnas)) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_13 + ((0.0847457627118645 * __k_2_v) + (0.169491525423729 * v))))))) - hnas))/(_lio_17 + (1.0f*_lio_18/(1.0 + exp(_lio_19 * (_lio_20 + ((0.5 * __k_2_v) + v))))));
        const double __k_3_mka = 1.0f*(dt * (((0.5 * (- __k_2_mka)) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_42 + ((- 0.031055900621118) * __k_2_v)) - (0.062111801242236 * v)))))) - mka))/(_lio_22 + (1.0f*_lio_23/((1.0 + exp(_lio_24 * (_lio_43 + ((0.5 * __k_2_v) + v)))) * (1.0 + exp(_lio_25 * (_lio_26 + ((0.5 * __k_2_v) + v)))))));
        const double __k_3_mks = 1.0f*(dt * (((0.5 * (- __k_2_mks)) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_42 + ((- 0.031055900621118) * __k_2_v)) - (0.062111801242236 * v)))))) - mks))/(_lio_27 + (1.0f*_lio_28/(1.0 + exp(_lio_24 * (_lio_43 + ((0.5 * __k_2_v) + v))))));
        const double __k_3_mkv = 1.0f*(dt * (((0.5 * (- __k_2_mkv)) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_44 + ((- 0.0183553597650514) * __k_2_v)) - (0.0367107195301028 * v)))))) - mkv))/(_lio_30 + (1.0f*_lio_31/(1.0 + exp(_lio_12 * (_lio_45 + ((0.0364697301239971 * __k_2_v) + (0.0729394602479942 * v)))))));
        const double __k_3_mnaf = 1.0f*(dt * (((0.5 * (- __k_2_mnaf)) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_46 + ((- 0.075187969924812) * __k_2_v)) - (0.150375939849624 * v)))))) - mnaf))/(_lio_34 + (1.0f*_lio_35/(1.0 + exp(_lio_12 * (_lio_36 + ((0.077519379844961 * __k_2_v) + (0.155038759689922 * v)))))));
        const double __k_3_mnas = 1.0f*(dt * (((0.5 * (- __k_2_mnas)) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_46 + ((- 0.075187969924812) * __k_2_v)) - (0.150375939849624 * v)))))) - mnas))/(_lio_34 + (1.0f*_lio_35/(1.0 + exp(_lio_12 * (_lio_36 + ((0.077519379844961 * __k_2_v) + (0.155038759689922 * v)))))));
        const double __k_3_v = _lio_37 * (Iapp - ((((((gka * ((((0.5 * __k_2_hka) + hka) * (_brian_pow((0.5 * __k_2_mka) + mka, 3))) * (_lio_47 + ((0.5 * __k_2_v) + v)))) + (gks * ((((0.5 * __k_2_hks) + hks) * (_brian_pow((0.5 * __k_2_mks) + mks, 3))) * (_lio_47 + ((0.5 * __k_2_v) + v))))) + (gkv * ((_brian_pow((0.5 * __k_2_mkv) + mkv, 4)) * (_lio_47 + ((0.5 * __k_2_v) + v))))) + (gl * (_lio_48 + ((0.5 * __k_2_v) + v)))) + (gnaf * ((((0.5 * __k_2_hnaf) + hnaf) * (_brian_pow((0.5 * __k_2_mnaf) + mnaf, 3))) * (_lio_49 + ((0.5 * __k_2_v) + v))))) + (gnas * ((((0.5 * __k_2_hnas) + hnas) * (_brian_pow((0.5 * __k_2_mnas) + mnas, 3))) * (_lio_49 + ((0.5 * __k_2_v) + v))))));
        const double __k_4_hka = 1.0f*(dt * (((- __k_3_hka) + (1.0f*1.0/(1.0 + exp(_lio_2 * (_lio_3 + (__k_3_v + v)))))) - hka))/(_lio_4 + (1.0f*_lio_5/((1.0 + exp(_lio_6 * (_lio_41 + (__k_3_v + v)))) * (1.0 + exp(_lio_8 * (_lio_9 + (__k_3_v + v)))))));
        const double __k_4_hks = 1.0f*(dt * (((- __k_3_hks) + (1.0f*1.0/(1.0 + exp(_lio_2 * (_lio_3 + (__k_3_v + v)))))) - hks))/(_lio_10 + (1.0f*_lio_11/(1.0 + exp(_lio_6 * (_lio_41 + (__k_3_v + v))))));
        const double __k_4_hnaf = 1.0f*(dt * (((- __k_3_hnaf) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_13 + ((0.169491525423729 * __k_3_v) + (0.169491525423729 * v))))))) - hnaf))/(_lio_14 + (1.0f*_lio_15/(1.0 + exp(_lio_12 * (_lio_16 + ((0.115074798619102 * __k_3_v) + (0.115074798619102 * v)))))));
        const double __k_4_hnas = 1.0f*(dt * (((- __k_3_hnas) + (1.0f*1.0/(1.0 + exp(_lio_12 * (_lio_13 + ((0.169491525423729 * __k_3_v) + (0.169491525423729 * v))))))) - hnas))/(_lio_17 + (1.0f*_lio_18/(1.0 + exp(_lio_19 * (_lio_20 + (__k_3_v + v))))));
        const double __k_4_mka = 1.0f*(dt * (((- __k_3_mka) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_42 + ((- 0.062111801242236) * __k_3_v)) - (0.062111801242236 * v)))))) - mka))/(_lio_22 + (1.0f*_lio_23/((1.0 + exp(_lio_24 * (_lio_43 + (__k_3_v + v)))) * (1.0 + exp(_lio_25 * (_lio_26 + (__k_3_v + v)))))));
        const double __k_4_mks = 1.0f*(dt * (((- __k_3_mks) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_42 + ((- 0.062111801242236) * __k_3_v)) - (0.062111801242236 * v)))))) - mks))/(_lio_27 + (1.0f*_lio_28/(1.0 + exp(_lio_24 * (_lio_43 + (__k_3_v + v))))));
        const double __k_4_mkv = 1.0f*(dt * (((- __k_3_mkv) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_44 + ((- 0.0367107195301028) * __k_3_v)) - (0.0367107195301028 * v)))))) - mkv))/(_lio_30 + (1.0f*_lio_31/(1.0 + exp(_lio_12 * (_lio_45 + ((0.0729394602479942 * __k_3_v) + (0.0729394602479942 * v)))))));
        const double __k_4_mnaf = 1.0f*(dt * (((- __k_3_mnaf) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_46 + ((- 0.150375939849624) * __k_3_v)) - (0.150375939849624 * v)))))) - mnaf))/(_lio_34 + (1.0f*_lio_35/(1.0 + exp(_lio_12 * (_lio_36 + ((0.155038759689922 * __k_3_v) + (0.155038759689922 * v)))))));
        const double __k_4_mnas = 1.0f*(dt * (((- __k_3_mnas) + (1.0f*1.0/(1.0 + exp(_lio_12 * ((_lio_46 + ((- 0.150375939849624) * __k_3_v)) - (0.150375939849624 * v)))))) - mnas))/(_lio_34 + (1.0f*_lio_35/(1.0 + exp(_lio_12 * (_lio_36 + ((0.155038759689922 * __k_3_v) + (0.155038759689922 * v)))))));
        const double __k_4_v = _lio_37 * (Iapp - ((((((gka * (((__k_3_hka + hka) * (_brian_pow(__k_3_mka + mka, 3))) * (_lio_47 + (__k_3_v + v)))) + (gks * (((__k_3_hks + hks) * (_brian_pow(__k_3_mks + mks, 3))) * (_lio_47 + (__k_3_v + v))))) + (gkv * ((_brian_pow(__k_3_mkv + mkv, 4)) * (_lio_47 + (__k_3_v + v))))) + (gl * (_lio_48 + (__k_3_v + v)))) + (gnaf * (((__k_3_hnaf + hnaf) * (_brian_pow(__k_3_mnaf + mnaf, 3))) * (_lio_49 + (__k_3_v + v))))) + (gnas * (((__k_3_hnas + hnas) * (_brian_pow(__k_3_mnas + mnas, 3))) * (_lio_49 + (__k_3_v + v))))));
        const double _hka = ((((0.16666666666666666 * __k_1_hka) + (0.3333333333333333 * __k_2_hka)) + (0.3333333333333333 * __k_3_hka)) + (0.16666666666666666 * __k_4_hka)) + hka;
        const double _hks = ((((0.16666666666666666 * __k_1_hks) + (0.3333333333333333 * __k_2_hks)) + (0.3333333333333333 * __k_3_hks)) + (0.16666666666666666 * __k_4_hks)) + hks;
        const double _hnaf = ((((0.16666666666666666 * __k_1_hnaf) + (0.3333333333333333 * __k_2_hnaf)) + (0.3333333333333333 * __k_3_hnaf)) + (0.16666666666666666 * __k_4_hnaf)) + hnaf;
        const double _hnas = ((((0.16666666666666666 * __k_1_hnas) + (0.3333333333333333 * __k_2_hnas)) + (0.3333333333333333 * __k_3_hnas)) + (0.16666666666666666 * __k_4_hnas)) + hnas;
        const double _mka = ((((0.16666666666666666 * __k_1_mka) + (0.3333333333333333 * __k_2_mka)) + (0.3333333333333333 * __k_3_mka)) + (0.16666666666666666 * __k_4_mka)) + mka;
        const double _mks = ((((0.16666666666666666 * __k_1_mks) + (0.3333333333333333 * __k_2_mks)) + (0.3333333333333333 * __k_3_mks)) + (0.16666666666666666 * __k_4_mks)) + mks;
        const double _mkv = ((((0.16666666666666666 * __k_1_mkv) + (0.3333333333333333 * __k_2_mkv)) + (0.3333333333333333 * __k_3_mkv)) + (0.16666666666666666 * __k_4_mkv)) + mkv;
        const double _mnaf = ((((0.16666666666666666 * __k_1_mnaf) + (0.3333333333333333 * __k_2_mnaf)) + (0.3333333333333333 * __k_3_mnaf)) + (0.16666666666666666 * __k_4_mnaf)) + mnaf;
        const double _mnas = ((((0.16666666666666666 * __k_1_mnas) + (0.3333333333333333 * __k_2_mnas)) + (0.3333333333333333 * __k_3_mnas)) + (0.16666666666666666 * __k_4_mnas)) + mnas;
        const double _v = ((((0.16666666666666666 * __k_1_v) + (0.3333333333333333 * __k_2_v)) + (0.3333333333333333 * __k_3_v)) + (0.16666666666666666 * __k_4_v)) + v;
        hka = _hka;
        hks = _hks;
        hnaf = _hnaf;
        hnas = _hnas;
        mka = _mka;
        mks = _mks;
        mkv = _mkv;
        mnaf = _mnaf;
        mnas = _mnas;
        v = _v;
        _ptr_array_neurongroup_hka[_idx] = hka;
        _ptr_array_neurongroup_hks[_idx] = hks;
        _ptr_array_neurongroup_hnaf[_idx] = hnaf;
        _ptr_array_neurongroup_hnas[_idx] = hnas;
        _ptr_array_neurongroup_mka[_idx] = mka;
        _ptr_array_neurongroup_mks[_idx] = mks;
        _ptr_array_neurongroup_mkv[_idx] = mkv;
        _ptr_array_neurongroup_mnaf[_idx] = mnaf;
        _ptr_array_neurongroup_mnas[_idx] = mnas;
        _ptr_array_neurongroup_not_refractory[_idx] = not_refractory;
        _ptr_array_neurongroup_v[_idx] = v;

    }

}


