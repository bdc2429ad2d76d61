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
 * The processes to report, an XID error to deliver once, and calls that hang are read from a
 * file next to this library, `nvml_stub.conf` (found through dladdr), so that several stubs can
 * run side by side in one test process. One directive per line:
 *     compute  <gpu> <pid> <bytes|na>
 *     graphics <gpu> <pid> <bytes|na>
 *     xid      <gpu> <value>
 *     hang     <function>
 * `hang` makes that NVML function block, as a call on a wedged GPU does, for as long as the line
 * is in the file (re-read every 50 ms): a test hangs a call, then un-hangs it by rewriting the
 * file. The functions that can hang: nvmlInit_v2, nvmlDeviceGetCount_v2,
 * nvmlDeviceGetUtilizationRates, nvmlDeviceGetMemoryInfo_v2, nvmlDeviceGetTemperature,
 * nvmlDeviceGetPowerUsage.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_TIMEOUT 10
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25

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
