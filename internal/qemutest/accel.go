package qemutest

import (
	"fmt"
	"os"
)

// accel is how QEMU runs the guest's CPU: "tcg" (emulation, works
// everywhere) or "kvm".
type accel string

const (
	accelTCG accel = "tcg"
	accelKVM accel = "kvm"
)

// hostFacts are what the choice of accelerator depends on.
type hostFacts struct {
	override  string // $TSUMIKI_QEMU_ACCEL: "", "tcg" or "kvm"
	kvmUsable bool   // /dev/kvm opens read-write
	pvm       bool   // /sys/module/kvm_pvm exists: /dev/kvm is nested PVM
}

// accelPlan is the choice before any boot: use accel, or, when probe is
// set, boot once with it and fall back to TCG if that boot fails.
type accelPlan struct {
	accel accel
	probe bool
	why   string
}

// planAccel decides from the host's facts. Nested PVM KVM is never used: a
// stock kernel hangs or aborts under it (-cpu host fails on MSR 0x10a).
func planAccel(f hostFacts) (accelPlan, error) {
	switch f.override {
	case "":
	case string(accelTCG), string(accelKVM):
		return accelPlan{accel: accel(f.override), why: "TSUMIKI_QEMU_ACCEL=" + f.override}, nil
	default:
		return accelPlan{}, fmt.Errorf("%w: TSUMIKI_QEMU_ACCEL=%q: want tcg or kvm", ErrConfig, f.override)
	}
	switch {
	case f.pvm:
		return accelPlan{accel: accelTCG, why: "/dev/kvm is nested PVM (/sys/module/kvm_pvm), which a stock kernel does not boot under"}, nil
	case !f.kvmUsable:
		return accelPlan{accel: accelTCG, why: "no usable /dev/kvm"}, nil
	}
	return accelPlan{accel: accelKVM, probe: true, why: "/dev/kvm"}, nil
}

// readHostFacts looks at the environment, /dev/kvm and /sys/module.
func readHostFacts() hostFacts {
	f := hostFacts{override: os.Getenv("TSUMIKI_QEMU_ACCEL")}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		f.pvm = true
	}
	if kvm, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		kvm.Close()
		f.kvmUsable = true
	}
	return f
}
