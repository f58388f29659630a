package gpu

/*
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

// Minimal, ABI-identical declarations of the two webgpu.h entry points this file needs. The symbols are
// resolved against wgpu-native, which package github.com/oliverbestmann/webgpu/wgpu links into every
// binary; that package exposes no error scopes of its own beyond the Validation scope of its Try calls.
typedef struct smolWGPUDeviceImpl* smolWGPUDevice;
typedef struct { const char* data; size_t length; } smolStringView;
typedef void (*smolPopCallback)(uint32_t status, uint32_t type, smolStringView message, void* u1, void* u2);
typedef struct {
	void* nextInChain;
	uint32_t mode;
	smolPopCallback callback;
	void* userdata1;
	void* userdata2;
} smolPopInfo;
typedef struct { uint64_t id; } smolFuture;

void wgpuDeviceDestroy(smolWGPUDevice device);
void wgpuDevicePushErrorScope(smolWGPUDevice device, uint32_t filter);
smolFuture wgpuDevicePopErrorScope(smolWGPUDevice device, smolPopInfo info);

enum { smolMsgCap = 4096 };

typedef struct {
	uint32_t called;
	uint32_t status;
	uint32_t type;
	char msg[smolMsgCap];
} smolScopeResult;

static void smolPopCB(uint32_t status, uint32_t type, smolStringView message, void* u1, void* u2) {
	smolScopeResult* r = (smolScopeResult*)u1;
	r->called = 1;
	r->status = status;
	r->type = type;
	size_t n = 0;
	if (message.data != NULL) {
		n = message.length == SIZE_MAX ? strlen(message.data) : message.length;
		if (n > smolMsgCap - 1) n = smolMsgCap - 1;
		memcpy(r->msg, message.data, n);
	}
	r->msg[n] = 0;
}

static void smolDestroy(smolWGPUDevice d) {
	wgpuDeviceDestroy(d);
}

static void smolPush(smolWGPUDevice d, uint32_t filter) {
	wgpuDevicePushErrorScope(d, filter);
}

// smolPop pops the innermost scope; wgpu-native calls an AllowSpontaneous callback before returning.
static void smolPop(smolWGPUDevice d, smolScopeResult* r) {
	memset(r, 0, sizeof(*r));
	smolPopInfo info;
	memset(&info, 0, sizeof(info));
	info.mode = 3; // WGPUCallbackMode_AllowSpontaneous
	info.callback = smolPopCB;
	info.userdata1 = r;
	wgpuDevicePopErrorScope(d, info);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"smolchat/engine"
	"unsafe"

	"github.com/oliverbestmann/webgpu/wgpu"
)

// Errors a device operation can wrap. Use errors.Is to tell them apart.
var (
	errOutOfMemory = errors.New("GPU out of memory")
	ErrValidation  = errors.New("GPU validation error")
	ErrInternal    = errors.New("GPU internal error")
	// ErrDeviceLost also matches engine.ErrBackendLost, so the engine knows to re-create the backend.
	ErrDeviceLost error = lostError{}
)

type lostError struct{}

func (lostError) Error() string        { return "GPU device lost" }
func (lostError) Is(target error) bool { return target == engine.ErrBackendLost }

// webgpu.h enum values.
const (
	filterValidation  = 1
	filterOutOfMemory = 2

	errTypeNoError     = 1
	errTypeValidation  = 2
	errTypeOutOfMemory = 3
	errTypeInternal    = 4

	popStatusSuccess = 1
)

// rawDevice is the WGPUDevice handle inside a *wgpu.Device. The wrapper keeps it as its first field
// (`ref C.WGPUDevice`, pinned by the module version in go.mod); the size check guards against a layout
// change slipping in with an upgrade.
func rawDevice(d *wgpu.Device) C.smolWGPUDevice {
	if d == nil || !d.IsValid() || unsafe.Sizeof(*d) < unsafe.Sizeof(uintptr(0)) {
		return nil
	}
	return *(*C.smolWGPUDevice)(unsafe.Pointer(d))
}

// destroyDevice frees the device's memory at once, whatever Go wrappers still refer to it (package wgpu
// releases objects from finalizers); the device-lost callback then fires with reason "destroyed".
func destroyDevice(d *wgpu.Device) {
	if raw := rawDevice(d); raw != nil {
		C.smolDestroy(raw)
	}
}

// scoped runs f inside OutOfMemory and Validation error scopes, so an error that wgpu-native would
// otherwise hand to its default uncaptured-error handler (which aborts the process) comes back as a Go
// error naming what was being done. The Try calls of package wgpu push their own inner Validation scope;
// errors they catch are returned by f itself. (wgpu-native v29 rejects the Internal filter with a panic,
// so internal errors cannot be scoped.)
func scoped(d *wgpu.Device, what string, f func() error) error {
	raw := rawDevice(d)
	if raw == nil {
		return fmt.Errorf("%s: %w: no device", what, ErrDeviceLost)
	}
	C.smolPush(raw, filterOutOfMemory)
	C.smolPush(raw, filterValidation)
	ferr := f()
	res := (*C.smolScopeResult)(C.calloc(1, C.size_t(unsafe.Sizeof(C.smolScopeResult{}))))
	defer C.free(unsafe.Pointer(res))
	var serr error
	for range 2 {
		C.smolPop(raw, res)
		if serr != nil {
			continue // keep popping so the scope stack stays balanced
		}
		serr = scopeError(res)
	}
	var werr wgpu.Error
	switch {
	case ferr != nil && errors.As(ferr, &werr):
		// The Try calls report what their own Validation scope caught.
		return fmt.Errorf("%s: %w: %w", what, ErrValidation, ferr)
	case ferr != nil:
		return fmt.Errorf("%s: %w", what, ferr)
	case serr != nil:
		return fmt.Errorf("%s: %w", what, serr)
	}
	return nil
}

func scopeError(r *C.smolScopeResult) error {
	if r.called == 0 {
		return nil // wgpu-native always calls back synchronously; nothing to report otherwise
	}
	msg := C.GoString(&r.msg[0])
	if r.status != popStatusSuccess {
		// Popping fails only when the device is gone.
		return fmt.Errorf("%w: %s", ErrDeviceLost, msg)
	}
	switch r._type {
	case errTypeNoError:
		return nil
	case errTypeValidation:
		return fmt.Errorf("%w: %s", ErrValidation, msg)
	case errTypeOutOfMemory:
		return fmt.Errorf("%w: %s", errOutOfMemory, msg)
	case errTypeInternal:
		return fmt.Errorf("%w: %s", ErrInternal, msg)
	}
	return fmt.Errorf("GPU error (type %d): %s", uint32(r._type), msg)
}
