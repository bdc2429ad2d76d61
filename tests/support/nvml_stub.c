/* A stub libnvidia-ml.so.1 for lookout's GPU tests: two fake GPUs behind NVML's C ABI.
 *
 * Built by the tests with `gcc -shared -fPIC -o <dir>/libnvidia-ml.so.1 nvml_stub.c` and loaded
 * through nvml-wrapper's real dlopen path. The ABI (function names, argument types, struct
 * layouts, return codes) follows nvml.h as mirrored by nvml-wrapper-sys 0.10's bindings.
 *
 * GPU 0 supports everything the collector asks for. GPU 1 answers NVML_ERROR_NOT_SUPPORTED for
 * total energy, ECC counters and event types (so no XID), as a GeForce board would; its minor
 * number (3) differs from its index, to show that `device` comes from the minor number.
 *
 * The processes to report, an XID error to deliver once, calls that hang, and the fields below
 * are read from a file next to this library, `nvml_stub.conf` (found through dladdr), so that
 * several stubs can run side by side in one test process. One directive per line:
 *     compute     <gpu> <pid> <bytes|na>
 *     graphics    <gpu> <pid> <bytes|na>
 *     xid         <gpu> <value>
 *     hang        <function>
 *     set         <gpu> <field> <value>   a field's value instead of its default
 *     unsupported <gpu> <field>           the field answers NVML_ERROR_NOT_SUPPORTED
 *     fail        <gpu> <field>           the field answers NVML_ERROR_UNKNOWN (a broken read)
 *     deny        <gpu> <field>           the field answers NVML_ERROR_NO_PERMISSION
 * `hang` makes that NVML function block, as a call on a wedged GPU does, for as long as the line
 * is in the file (re-read every 50 ms): a test hangs a call, then un-hangs it by rewriting the
 * file. The functions that can hang: nvmlInit_v2, nvmlDeviceGetCount_v2,
 * nvmlDeviceGetUtilizationRates, nvmlDeviceGetMemoryInfo_v2, nvmlDeviceGetTemperature,
 * nvmlDeviceGetPowerUsage.
 *
 * The fields (defaults: GPU 0, a data-centre board / GPU 1, a GeForce board):
 *     throttle      clock throttle (event) reasons bitmask       0x44 / 0x1
 *     fan           nvmlDeviceGetFanSpeed, percent               not supported / 41
 *     pcie_replay   nvmlDeviceGetPcieReplayCounter               3 / 0
 *     nvlink        NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_{TX,RX}   see below / not supported
 *     nvlink_links  how many links answer                        12
 *     nvlink_tx     KiB sent on link 0; link i sent (i+1) times as much      1000
 *     nvlink_rx     KiB received on link 0, likewise                         500
 *     gpm           whether nvmlGpmQueryDeviceSupport says yes   yes / no
 *     gpm_graphics, gpm_sm, gpm_occupancy, gpm_tensor, gpm_dram   percent   62.5, 40, 25, 12.5, 30
 *     gpm_pcie_tx, gpm_pcie_rx                                    MiB/s     96, 32
 * GPM is modelled as hardware counters: each nvmlGpmSampleGet advances the device's counters
 * by rate x elapsed time, and nvmlGpmMetricsGet divides the difference of two samples of one
 * device by the time between them, so it needs two distinct samples, the older first. A
 * sample's allocation count is written to `nvml_stub.stats` beside the library
 * (`gpm_samples_live <n>`), so that tests can check that samples are freed.
 *
 * Built with -DSTUB_OLD_DRIVER, the library is a driver from before GPM and the clocks-event
 * rename (R515): no nvmlGpm* symbols and no nvmlDeviceGetCurrentClocksEventReasons.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_TIMEOUT 10
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25
#define NVML_ERROR_UNKNOWN 999

#define NVML_VALUE_NOT_AVAILABLE_ULL 0xFFFFFFFFFFFFFFFFULL
#define NVML_EVENT_TYPE_XID_CRITICAL 8ULL

typedef struct {
    unsigned int index;
} stub_device;
typedef stub_device *nvmlDevice_t;

typedef struct {
    int registered[2];
} stub_event_set;
typedef stub_event_set *nvmlEventSet_t;

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

typedef struct {
    char busIdLegacy[16];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType;
    unsigned long long eventData;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlEventData_t;

static stub_device devices[2] = {{0}, {1}};
static int init_count = 0;

static const char *NAMES[2] = {"NVIDIA Stub A100-SXM4-40GB", "NVIDIA Stub GeForce RTX 3090"};
static const char *UUIDS[2] = {"GPU-00000000-1111-2222-3333-444444444444",
                               "GPU-55555555-6666-7777-8888-999999999999"};
static const char *BUS_IDS[2] = {"00000000:07:00.0", "00000000:0A:00.0"};
static const unsigned int MINORS[2] = {0, 3};
static const unsigned int UTIL_GPU[2] = {87, 12};
static const unsigned int UTIL_MEM[2] = {45, 3};
static const unsigned long long MEM_TOTAL[2] = {42949672960ULL, 25769803776ULL}; /* 40, 24 GiB */
static const unsigned long long MEM_USED[2] = {10737418240ULL, 1073741824ULL};   /* 10, 1 GiB */
static const unsigned long long MEM_RESERVED[2] = {536870912ULL, 268435456ULL};
static const unsigned int TEMP[2] = {61, 44};
static const unsigned int POWER_MW[2] = {251500, 30250};
static const unsigned int SM_CLOCK[2] = {1410, 210};
static const unsigned int MEM_CLOCK[2] = {1215, 405};
static const unsigned long long ENERGY_MJ[1] = {987654321ULL};
/* ECC totals on GPU 0, indexed [error type: corrected, uncorrected][counter: volatile, aggregate]. */
static const unsigned long long ECC[2][2] = {{5, 17}, {1, 2}};

#define MAX_PROCS 32
typedef struct {
    unsigned int gpu;
    unsigned int pid;
    unsigned long long bytes;
} stub_proc;

static int copy_string(char *out, unsigned int len, const char *s) {
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(s) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, s);
    return NVML_SUCCESS;
}

static int valid(nvmlDevice_t d) {
    return init_count > 0 && (d == &devices[0] || d == &devices[1]);
}

/* The path of the config file next to this library (found once per thread), or NULL. */
static const char *conf_path(void) {
    static __thread char path[PATH_MAX];
    if (path[0] != '\0') return path;
    Dl_info info;
    if (dladdr((void *)&copy_string, &info) == 0 || info.dli_fname == NULL) return NULL;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", info.dli_fname);
    char *slash = strrchr(p, '/');
    if (slash == NULL) return NULL;
    snprintf(slash + 1, sizeof p - (size_t)(slash + 1 - p), "nvml_stub.conf");
    memcpy(path, p, sizeof path);
    return path;
}

static FILE *open_conf(void) {
    const char *path = conf_path();
    return path == NULL ? NULL : fopen(path, "r");
}

/* Whether the config file has `hang <fn>`. Each thread remembers the file (inode, size, mtime)
 * it last found without any `hang` line, so that the check costs one stat per call. */
static int hang_wanted(const char *fn) {
    static __thread struct stat quiet;
    static __thread int quiet_valid = 0;
    const char *path = conf_path();
    struct stat st;
    if (path == NULL || stat(path, &st) != 0) return 0;
    if (quiet_valid && st.st_ino == quiet.st_ino && st.st_size == quiet.st_size &&
        st.st_mtim.tv_sec == quiet.st_mtim.tv_sec && st.st_mtim.tv_nsec == quiet.st_mtim.tv_nsec)
        return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    int any = 0, found = 0;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        char k[32], name[128];
        if (sscanf(line, "%31s %127s", k, name) != 2 || strcmp(k, "hang") != 0) continue;
        any = 1;
        if (strcmp(name, fn) == 0) found = 1;
    }
    fclose(f);
    quiet = st;
    quiet_valid = !any;
    return found;
}

/* Block while the config file says `hang <fn>`. */
static void maybe_hang(const char *fn) {
    struct timespec ts = {0, 50L * 1000000L};
    while (hang_wanted(fn)) nanosleep(&ts, NULL);
}

/* The processes of one kind ("compute" or "graphics") on one GPU. */
static int read_procs(const char *kind, unsigned int gpu, stub_proc *out) {
    FILE *f = open_conf();
    int n = 0;
    if (f == NULL) return 0;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL && n < MAX_PROCS) {
        char k[32], bytes[32];
        unsigned int g, pid;
        if (sscanf(line, "%31s %u %u %31s", k, &g, &pid, bytes) != 4) continue;
        if (strcmp(k, kind) != 0 || g != gpu) continue;
        out[n].gpu = g;
        out[n].pid = pid;
        out[n].bytes = strcmp(bytes, "na") == 0 ? NVML_VALUE_NOT_AVAILABLE_ULL
                                                : strtoull(bytes, NULL, 10);
        n++;
    }
    fclose(f);
    return n;
}

/* The XID value to deliver once for a GPU, or 0. */
static unsigned long long read_xid(unsigned int gpu) {
    FILE *f = open_conf();
    unsigned long long v = 0;
    if (f == NULL) return 0;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        char k[32];
        unsigned int g;
        unsigned long long x;
        if (sscanf(line, "%31s %u %llu", k, &g, &x) == 3 && strcmp(k, "xid") == 0 && g == gpu)
            v = x;
    }
    fclose(f);
    return v;
}

nvmlReturn_t nvmlInit_v2(void) {
    maybe_hang(__func__);
    __sync_fetch_and_add(&init_count, 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
    if (init_count <= 0) return NVML_ERROR_UNINITIALIZED;
    __sync_fetch_and_sub(&init_count, 1);
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    return copy_string(version, length, "550.54.15");
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    return copy_string(version, length, "12.550.54.15");
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    maybe_hang(__func__);
    if (init_count <= 0) return NVML_ERROR_UNINITIALIZED;
    *count = 2;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (init_count <= 0) return NVML_ERROR_UNINITIALIZED;
    if (index > 1 || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &devices[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length) {
    if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
    return copy_string(name, length, NAMES[d->index]);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int length) {
    if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
    return copy_string(uuid, length, UUIDS[d->index]);
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t d, unsigned int *minor) {
    if (!valid(d)) return NVML_ERROR_INVALID_ARGUMENT;
    *minor = MINORS[d->index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *pci) {
    if (!valid(d) || pci == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    memset(pci, 0, sizeof *pci);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%s", BUS_IDS[d->index] + 4);
    snprintf(pci->busId, sizeof pci->busId, "%s", BUS_IDS[d->index]);
    pci->bus = d->index == 0 ? 7 : 10;
    pci->pciDeviceId = 0x20b010de;
    pci->pciSubSystemId = 0x134f10de;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    maybe_hang(__func__);
    if (!valid(d) || u == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    u->gpu = UTIL_GPU[d->index];
    u->memory = UTIL_MEM[d->index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    maybe_hang(__func__);
    if (!valid(d) || m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    /* NVML_STRUCT_VERSION(Memory, 2): the caller must say which layout it passes. */
    if (m->version != (unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    unsigned int i = d->index;
    m->total = MEM_TOTAL[i];
    m->reserved = MEM_RESERVED[i];
    m->used = MEM_USED[i];
    m->free = MEM_TOTAL[i] - MEM_RESERVED[i] - MEM_USED[i];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *temp) {
    maybe_hang(__func__);
    if (!valid(d) || sensor != 0 || temp == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *temp = TEMP[d->index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *power) {
    maybe_hang(__func__);
    if (!valid(d) || power == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *power = POWER_MW[d->index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, int type, unsigned int *clock) {
    if (!valid(d) || clock == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    switch (type) {
    case 1: *clock = SM_CLOCK[d->index]; return NVML_SUCCESS;  /* NVML_CLOCK_SM */
    case 2: *clock = MEM_CLOCK[d->index]; return NVML_SUCCESS; /* NVML_CLOCK_MEM */
    default: return NVML_ERROR_NOT_SUPPORTED;
    }
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *energy) {
    if (!valid(d) || energy == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->index != 0) return NVML_ERROR_NOT_SUPPORTED;
    *energy = ENERGY_MJ[0];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int errorType, int counterType,
                                         unsigned long long *count) {
    if (!valid(d) || count == NULL || errorType < 0 || errorType > 1 || counterType < 0 ||
        counterType > 1)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (d->index != 0) return NVML_ERROR_NOT_SUPPORTED;
    *count = ECC[errorType][counterType];
    return NVML_SUCCESS;
}

/* NVML's contract for the process lists: with too small a buffer (or none), set *count to the
 * number needed and answer INSUFFICIENT_SIZE (SUCCESS when there are none). */
static nvmlReturn_t processes(const char *kind, nvmlDevice_t d, unsigned int *count,
                              nvmlProcessInfo_t *infos) {
    if (!valid(d) || count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    stub_proc procs[MAX_PROCS];
    int n = read_procs(kind, d->index, procs);
    if (infos == NULL || *count < (unsigned int)n) {
        *count = (unsigned int)n;
        return n == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (int i = 0; i < n; i++) {
        infos[i].pid = procs[i].pid;
        infos[i].usedGpuMemory = procs[i].bytes;
        infos[i].gpuInstanceId = 0xFFFFFFFFu;
        infos[i].computeInstanceId = 0xFFFFFFFFu;
    }
    *count = (unsigned int)n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count,
                                                      nvmlProcessInfo_t *infos) {
    return processes("compute", d, count, infos);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t d, unsigned int *count,
                                                       nvmlProcessInfo_t *infos) {
    return processes("graphics", d, count, infos);
}

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t d, unsigned long long *types) {
    if (!valid(d) || types == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->index != 0) return NVML_ERROR_NOT_SUPPORTED;
    *types = NVML_EVENT_TYPE_XID_CRITICAL;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    if (init_count <= 0) return NVML_ERROR_UNINITIALIZED;
    if (set == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *set = calloc(1, sizeof(stub_event_set));
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types,
                                      nvmlEventSet_t set) {
    if (!valid(d) || set == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (d->index != 0) return NVML_ERROR_NOT_SUPPORTED;
    if (types & ~NVML_EVENT_TYPE_XID_CRITICAL) return NVML_ERROR_NOT_SUPPORTED;
    set->registered[d->index] = 1;
    return NVML_SUCCESS;
}

static int xid_delivered = 0;

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
    if (set == NULL || data == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int g = 0; g < 2; g++) {
        unsigned long long xid = set->registered[g] ? read_xid(g) : 0;
        if (xid != 0 && __sync_bool_compare_and_swap(&xid_delivered, 0, 1)) {
            memset(data, 0, sizeof *data);
            data->device = &devices[g];
            data->eventType = NVML_EVENT_TYPE_XID_CRITICAL;
            data->eventData = xid;
            return NVML_SUCCESS;
        }
    }
    struct timespec ts = {timeoutms / 1000, (long)(timeoutms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return NVML_ERROR_TIMEOUT;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    free(set);
    return NVML_SUCCESS;
}

/* ---- Fields configured by `set`, `unsupported` and `fail` ---------------------------------- */

enum field_state { FIELD_DEFAULT, FIELD_SET, FIELD_UNSUPPORTED, FIELD_FAIL, FIELD_DENY };

/* What the config file says about one field of one GPU (the last line wins); `*value` is set
 * for FIELD_SET. */
static enum field_state field_conf(unsigned int gpu, const char *field, double *value) {
    FILE *f = open_conf();
    enum field_state st = FIELD_DEFAULT;
    if (f == NULL) return st;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        char k[32], name[64], v[64];
        unsigned int g;
        int n = sscanf(line, "%31s %u %63s %63s", k, &g, name, v);
        if (n < 3 || g != gpu || strcmp(name, field) != 0) continue;
        if (strcmp(k, "set") == 0 && n == 4) {
            st = FIELD_SET;
            *value = strtod(v, NULL);
        } else if (strcmp(k, "unsupported") == 0) {
            st = FIELD_UNSUPPORTED;
        } else if (strcmp(k, "fail") == 0) {
            st = FIELD_FAIL;
        } else if (strcmp(k, "deny") == 0) {
            st = FIELD_DENY;
        }
    }
    fclose(f);
    return st;
}

/* A field's value: its default, or what the config says; NVML_SUCCESS or the error to answer.
 * `fallback` < 0 means "not supported unless configured". */
static nvmlReturn_t field(unsigned int gpu, const char *name, double fallback, double *out) {
    double v = fallback;
    switch (field_conf(gpu, name, &v)) {
    case FIELD_UNSUPPORTED: return NVML_ERROR_NOT_SUPPORTED;
    case FIELD_FAIL: return NVML_ERROR_UNKNOWN;
    case FIELD_DENY: return NVML_ERROR_NO_PERMISSION;
    case FIELD_SET: break;
    case FIELD_DEFAULT:
        if (fallback < 0) return NVML_ERROR_NOT_SUPPORTED;
        break;
    }
    *out = v;
    return NVML_SUCCESS;
}

static const double THROTTLE[2] = {0x44, 0x1};
static const double FAN[2] = {-1, 41};
static const double PCIE_REPLAY[2] = {3, 0};

static nvmlReturn_t clocks_reasons(nvmlDevice_t d, unsigned long long *reasons) {
    if (!valid(d) || reasons == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    double v = 0;
    nvmlReturn_t r = field(d->index, "throttle", THROTTLE[d->index], &v);
    if (r == NVML_SUCCESS) *reasons = (unsigned long long)v;
    return r;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d,
                                                       unsigned long long *reasons) {
    return clocks_reasons(d, reasons);
}

#ifndef STUB_OLD_DRIVER
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *reasons) {
    return clocks_reasons(d, reasons);
}
#endif

nvmlReturn_t nvmlDeviceGetFanSpeed(nvmlDevice_t d, unsigned int *speed) {
    if (!valid(d) || speed == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    double v = 0;
    nvmlReturn_t r = field(d->index, "fan", FAN[d->index], &v);
    if (r == NVML_SUCCESS) *speed = (unsigned int)v;
    return r;
}

nvmlReturn_t nvmlDeviceGetPcieReplayCounter(nvmlDevice_t d, unsigned int *value) {
    if (!valid(d) || value == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    double v = 0;
    nvmlReturn_t r = field(d->index, "pcie_replay", PCIE_REPLAY[d->index], &v);
    if (r == NVML_SUCCESS) *value = (unsigned int)v;
    return r;
}

/* ---- nvmlDeviceGetFieldValues: the NVLink throughput counters ------------------------------- */

#define NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX 138
#define NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX 139
#define NVML_VALUE_TYPE_UNSIGNED_LONG_LONG 3

typedef union {
    double dVal;
    int siVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    signed long long sllVal;
    unsigned short usVal;
} nvmlValue_t;

typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp;
    long long latencyUsec;
    int valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

static long long now_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t d, int count, nvmlFieldValue_t *values) {
    if (!valid(d) || count < 0 || (count > 0 && values == NULL))
        return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int g = d->index;
    double ignored = 0, links = 12, tx = 1000, rx = 500;
    /* The whole NVLink set: GPU 1 (GeForce) has none. */
    nvmlReturn_t all = field(g, "nvlink", g == 0 ? 1 : -1, &ignored);
    field(g, "nvlink_links", 12, &links);
    field(g, "nvlink_tx", 1000, &tx);
    field(g, "nvlink_rx", 500, &rx);
    for (int i = 0; i < count; i++) {
        nvmlFieldValue_t *v = &values[i];
        v->timestamp = now_usec();
        v->latencyUsec = 0;
        unsigned int id = v->fieldId;
        if (id != NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX &&
            id != NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX) {
            v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
            continue;
        }
        if (all != NVML_SUCCESS) {
            v->nvmlReturn = all;
            continue;
        }
        if (v->scopeId >= (unsigned int)links) {
            v->nvmlReturn = NVML_ERROR_INVALID_ARGUMENT;
            continue;
        }
        double base = id == NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX ? tx : rx;
        v->valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
        v->value.ullVal = (unsigned long long)(base * (v->scopeId + 1));
        v->nvmlReturn = NVML_SUCCESS;
    }
    return NVML_SUCCESS;
}

/* ---- GPM (GPU Performance Monitoring), absent from an old driver ---------------------------- */

#ifndef STUB_OLD_DRIVER

#define NVML_GPM_METRICS_GET_VERSION 1
#define NVML_GPM_SUPPORT_VERSION 1
#define NVML_GPM_METRIC_MAX 210

/* The metrics the stub models, with their config names and default rates per GPU. */
#define GPM_N 7
static const unsigned int GPM_IDS[GPM_N] = {1, 2, 3, 5, 10, 20, 21};
static const char *GPM_NAMES[GPM_N] = {"gpm_graphics", "gpm_sm",   "gpm_occupancy", "gpm_tensor",
                                       "gpm_dram",     "gpm_pcie_tx", "gpm_pcie_rx"};
static const char *GPM_UNITS[GPM_N] = {"%", "%", "%", "%", "%", "MiB/sec", "MiB/sec"};
static const double GPM_RATES[GPM_N] = {62.5, 40, 25, 12.5, 30, 96, 32};

typedef struct {
    int filled;
    unsigned int device;
    double t;
    double counters[GPM_N];
} stub_gpm_sample;
typedef stub_gpm_sample *nvmlGpmSample_t;

typedef struct {
    unsigned int metricId;
    nvmlReturn_t nvmlReturn;
    double value;
    struct {
        char *shortName;
        char *longName;
        char *unit;
    } metricInfo;
} nvmlGpmMetric_t;

typedef struct {
    unsigned int version;
    unsigned int numMetrics;
    nvmlGpmSample_t sample1;
    nvmlGpmSample_t sample2;
    nvmlGpmMetric_t metrics[NVML_GPM_METRIC_MAX];
} nvmlGpmMetricsGet_t;

typedef struct {
    unsigned int version;
    unsigned int isSupportedDevice;
} nvmlGpmSupport_t;

static pthread_mutex_t gpm_lock = PTHREAD_MUTEX_INITIALIZER;
static double gpm_last_t[2];
static double gpm_counters[2][GPM_N];
static long gpm_live = 0;

static double monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Write `gpm_samples_live <n>` to nvml_stub.stats beside the library (under gpm_lock): one
 * fixed-width pwrite to a file opened once, since rewriting a file per call is slow. */
static void write_stats(void) {
    static int fd = -1;
    if (fd < 0) {
        const char *conf = conf_path();
        if (conf == NULL) return;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s", conf);
        char *slash = strrchr(path, '/');
        if (slash == NULL) return;
        snprintf(slash + 1, sizeof path - (size_t)(slash + 1 - path), "nvml_stub.stats");
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return;
    }
    char line[64];
    int n = snprintf(line, sizeof line, "gpm_samples_live %20ld\n", gpm_live);
    if (pwrite(fd, line, (size_t)n, 0) != n) return;
}

nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t d, nvmlGpmSupport_t *support) {
    if (!valid(d) || support == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (support->version != NVML_GPM_SUPPORT_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    double v = 0;
    nvmlReturn_t r = field(d->index, "gpm", d->index == 0 ? 1 : 0, &v);
    if (r == NVML_ERROR_UNKNOWN) return r;
    /* Denied GPM is there: it is sampling that is refused. */
    support->isSupportedDevice = r == NVML_ERROR_NO_PERMISSION || (r == NVML_SUCCESS && v != 0);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t *sample) {
    if (init_count <= 0) return NVML_ERROR_UNINITIALIZED;
    if (sample == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *sample = calloc(1, sizeof(stub_gpm_sample));
    pthread_mutex_lock(&gpm_lock);
    gpm_live++;
    write_stats();
    pthread_mutex_unlock(&gpm_lock);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t sample) {
    if (sample == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    free(sample);
    pthread_mutex_lock(&gpm_lock);
    gpm_live--;
    write_stats();
    pthread_mutex_unlock(&gpm_lock);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t d, nvmlGpmSample_t sample) {
    if (!valid(d) || sample == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int g = d->index;
    double ignored = 0;
    nvmlReturn_t r = field(g, "gpm", g == 0 ? 1 : -1, &ignored);
    if (r != NVML_SUCCESS) return r;
    double now = monotonic_seconds();
    pthread_mutex_lock(&gpm_lock);
    if (gpm_last_t[g] > 0) {
        for (int m = 0; m < GPM_N; m++) {
            double rate = GPM_RATES[m];
            field(g, GPM_NAMES[m], rate, &rate);
            gpm_counters[g][m] += rate * (now - gpm_last_t[g]);
        }
    }
    gpm_last_t[g] = now;
    sample->filled = 1;
    sample->device = g;
    sample->t = now;
    memcpy(sample->counters, gpm_counters[g], sizeof sample->counters);
    pthread_mutex_unlock(&gpm_lock);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *req) {
    if (req == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (req->version != NVML_GPM_METRICS_GET_VERSION) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    stub_gpm_sample *a = req->sample1, *b = req->sample2;
    if (req->numMetrics > NVML_GPM_METRIC_MAX || a == NULL || b == NULL || !a->filled ||
        !b->filled || a->device != b->device || !(b->t > a->t))
        return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int i = 0; i < req->numMetrics; i++) {
        nvmlGpmMetric_t *out = &req->metrics[i];
        out->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        for (int m = 0; m < GPM_N; m++) {
            if (GPM_IDS[m] != out->metricId) continue;
            double ignored = 0;
            nvmlReturn_t r = field(a->device, GPM_NAMES[m], 0, &ignored);
            out->nvmlReturn = r;
            if (r != NVML_SUCCESS) break;
            out->value = (b->counters[m] - a->counters[m]) / (b->t - a->t);
            out->metricInfo.shortName = (char *)GPM_NAMES[m];
            out->metricInfo.longName = (char *)GPM_NAMES[m];
            out->metricInfo.unit = (char *)GPM_UNITS[m];
        }
    }
    return NVML_SUCCESS;
}

#endif /* STUB_OLD_DRIVER */
