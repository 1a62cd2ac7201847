// The Go side of bench/sync_bench.cpp: the same workloads with Go's sync and
// context packages, for side-by-side figures.
//
//	cd bench/sync_go && GOMAXPROCS=2 go test -bench . -count 5
package gorosyncbench

import (
	"context"
	"sync"
	"testing"
)

// 1000 goroutines x 1000 increments of one counter under one Mutex.
func BenchmarkMutexContended(b *testing.B) {
	const goroutines, increments = 1000, 1000
	for n := 0; n < b.N; n++ {
		var mu sync.Mutex
		counter := 0
		var wg sync.WaitGroup
		wg.Add(goroutines)
		for g := 0; g < goroutines; g++ {
			go func() {
				defer wg.Done()
				for i := 0; i < increments; i++ {
					mu.Lock()
					counter++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if counter != goroutines*increments {
			b.Fatal("wrong count")
		}
	}
}

func BenchmarkMutexUncontended(b *testing.B) {
	var mu sync.Mutex
	for n := 0; n < b.N; n++ {
		mu.Lock()
		mu.Unlock()
	}
}

func BenchmarkRWMutexReadUncontended(b *testing.B) {
	var rw sync.RWMutex
	for n := 0; n < b.N; n++ {
		rw.RLock()
		rw.RUnlock()
	}
}

// WaitGroup add/done/wait across 1000 goroutines.
func BenchmarkWaitGroup1000(b *testing.B) {
	const goroutines = 1000
	for n := 0; n < b.N; n++ {
		var wg sync.WaitGroup
		wg.Add(goroutines)
		for g := 0; g < goroutines; g++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
	}
}

// Cancel a context with 10,000 children; only the cancel is timed.
func BenchmarkContextCancelFanout(b *testing.B) {
	const children = 10000
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		parent, cancel := context.WithCancel(context.Background())
		cancels := make([]context.CancelFunc, 0, children)
		for i := 0; i < children; i++ {
			_, c := context.WithCancel(parent)
			cancels = append(cancels, c)
		}
		b.StartTimer()
		cancel()
		b.StopTimer()
		cancels = nil
		b.StartTimer()
	}
}

// Build and cancel 10,000 children, each with its Done channel made.
func BenchmarkContextCreateCancelFanout(b *testing.B) {
	const children = 10000
	for n := 0; n < b.N; n++ {
		parent, cancel := context.WithCancel(context.Background())
		cancels := make([]context.CancelFunc, 0, children)
		for i := 0; i < children; i++ {
			ctx, c := context.WithCancel(parent)
			_ = ctx.Done()
			cancels = append(cancels, c)
		}
		cancel()
		for _, c := range cancels {
			c()
		}
	}
}

// 10,000 goroutines each blocked on its own child's Done(); cancel the parent
// and wait until all have woken.
func BenchmarkContextCancelWake(b *testing.B) {
	const children = 10000
	for n := 0; n < b.N; n++ {
		parent, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(children)
		for i := 0; i < children; i++ {
			child, childCancel := context.WithCancel(parent)
			go func() {
				defer wg.Done()
				<-child.Done()
				childCancel()
			}()
		}
		cancel()
		wg.Wait()
	}
}

func BenchmarkSyncMapLoad(b *testing.B) {
	var m sync.Map
	for i := 0; i < 1024; i++ {
		m.Store(i, i)
	}
	b.RunParallel(func(pb *testing.PB) {
		k := 0
		for pb.Next() {
			m.Load(k & 1023)
			k++
		}
	})
}
