package backend

import (
	"strings"
	"sync/atomic"
	"testing"
)

func TestAsyncGroupWaitsAndReportsPanics(t *testing.T) {
	var a asyncGroup
	var done atomic.Int32
	for range 4 {
		a.goRun("ok", func() { done.Add(1) })
	}
	if err := a.wait(); err != nil || done.Load() != 4 {
		t.Fatalf("wait: err %v, %d of 4 functions done", err, done.Load())
	}
	a.goRun("dConv(x)/d#1", func() { panic("kernels: Conv2DBackwardWeight: dy is too short") })
	err := a.wait()
	if err == nil || !strings.Contains(err.Error(), "dConv(x)/d#1") || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("a panicking gradient gave %v, want an error naming the op and the panic", err)
	}
	if err := a.wait(); err != nil {
		t.Fatalf("a second wait returned the first wait's error again: %v", err)
	}
}
