// Growth-curve workloads of the side-by-side benchmark (bench/curves.sh).
// Each takes the curve's x as n and an optional second size, ops; they are
// mirrored by the curve_* functions in bench/peer/goro_peer.cpp and
// bench/fiber/main.cpp. bench/README.md defines them.
package main

import (
	"sync"
	"sync/atomic"
	"time"
)

const (
	curveSelectIters    = 100_000 // selects per curve_select run
	curveChanItems      = 1 << 20 // items per curve_chan run
	curveFanoutChunks   = 1024    // goroutines per curve_fanout run
	curveFanoutIters    = 1 << 18 // LCG steps per goroutine
	curveMaxSelectCases = 64
	curveSelectCapacity = 1
)

// A curveWorkload runs with the curve's x (n) and a second size (ops).
type curveWorkload struct {
	defaultN   int64
	defaultOps int64
	unit       string
	run        func(n, ops int64) float64
	valid      func(n int64) bool // nil: any n >= 1
}

var curveWorkloads = map[string]curveWorkload{
	"curve_spawn":  {100_000, 1, "ns/op", curveSpawn, nil},
	"curve_select": {4, curveSelectIters, "ns/op", curveSelect, isSelectWidth},
	"curve_chan":   {4, curveChanItems, "ns/op", curveChan, nil},
	"curve_fanout": {curveFanoutChunks, curveFanoutIters, "ns/op", curveFanout, nil},
}

var curveOrder = []string{"curve_spawn", "curve_select", "curve_chan", "curve_fanout"}

// isSelectWidth accepts the widths that select_gen.go has a loop for.
func isSelectWidth(n int64) bool {
	_, ok := selectLoops[n]
	return ok && n <= curveMaxSelectCases
}

// curve_spawn: spawn n goroutines that each signal "started" and park on one
// gate channel; the figure is the time from the first spawn until all n are
// parked, per goroutine. Then the gate is closed and every goroutine joined.
func curveSpawn(n, _ int64) float64 {
	gate := make(chan struct{})
	var started, finished sync.WaitGroup
	var woke int64
	start := time.Now()
	started.Add(int(n))
	finished.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func() {
			started.Done()
			<-gate
			atomic.AddInt64(&woke, 1)
			finished.Done()
		}()
	}
	started.Wait()
	elapsed := perOp(start, n)
	close(gate)
	finished.Wait()
	if woke != n {
		fail("curve_spawn woke %d goroutines, want %d", woke, n)
	}
	return elapsed
}

// curve_select with n cases: select4 generalised. n capacity-1 channels each
// hold one token (its index); each of ops iterations selects over the n
// receives (a static select statement generated into select_gen.go) and sends
// the token back to the channel it came from.
func curveSelect(n, ops int64) float64 {
	chs := make([]chan int, n)
	for i := range chs {
		chs[i] = make(chan int, curveSelectCapacity)
		chs[i] <- i
	}
	counts := make([]int64, n)
	loop := selectLoops[n]
	start := time.Now()
	bad := loop(chs, counts, ops)
	elapsed := perOp(start, ops)
	var total int64
	for _, c := range counts {
		total += c
	}
	if bad != 0 || total != ops {
		fail("curve_select total %d (want %d), %d tokens in the wrong channel", total, ops, bad)
	}
	for i, ch := range chs {
		select {
		case v := <-ch:
			if v != i {
				fail("curve_select channel %d holds token %d", i, v)
			}
		default:
			fail("curve_select lost the token of channel %d", i)
		}
		if ops >= 100*n && counts[i] == 0 {
			fail("curve_select never chose channel %d in %d selects", i, ops)
		}
	}
	return elapsed
}

// curve_chan: n producers send ops items in all (producer p sends the
// integers [p*ops/n, (p+1)*ops/n)) into one capacity-1024 channel, n
// consumers drain it; closed once every producer is done.
func curveChan(n, ops int64) float64 {
	ch := make(chan int64, bufferedCapacity)
	sums := make([]int64, n)
	counts := make([]int64, n)
	var prodWG, consWG sync.WaitGroup
	start := time.Now()
	prodWG.Add(int(n))
	for p := int64(0); p < n; p++ {
		go func(p int64) {
			for i := p * ops / n; i < (p+1)*ops/n; i++ {
				ch <- i
			}
			prodWG.Done()
		}(p)
	}
	consWG.Add(int(n))
	for c := int64(0); c < n; c++ {
		go func(c int64) {
			var s, k int64
			for v := range ch {
				s += v
				k++
			}
			sums[c] = s
			counts[c] = k
			consWG.Done()
		}(c)
	}
	prodWG.Wait()
	close(ch)
	consWG.Wait()
	elapsed := perOp(start, ops)
	var sum, count int64
	for c := range sums {
		sum += sums[c]
		count += counts[c]
	}
	if count != ops || sum != ops*(ops-1)/2 {
		fail("curve_chan got %d items summing to %d, want %d and %d", count, sum, ops, ops*(ops-1)/2)
	}
	return elapsed
}

// cpuChunk is one chunk of pure CPU work, identical in the three programs:
// iters steps of a 64-bit LCG, each folded into an accumulator with a shift
// and xor.
func cpuChunk(seed uint64, iters int64) uint64 {
	x := seed*0x9E3779B97F4A7C15 + 1
	var acc uint64
	for i := int64(0); i < iters; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		acc += x ^ (x >> 29)
	}
	return acc
}

// curve_fanout: n goroutines each compute one chunk of ops LCG steps and
// store the result in their slot; WaitGroup join. Per chunk. The worker count
// (GOMAXPROCS) is the curve's x. Checked against a sequential recomputation
// (not timed).
func curveFanout(n, ops int64) float64 {
	out := make([]uint64, n)
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func(i int64) {
			out[i] = cpuChunk(uint64(i), ops)
			wg.Done()
		}(i)
	}
	wg.Wait()
	elapsed := perOp(start, n)
	for i := int64(0); i < n; i++ {
		if out[i] != cpuChunk(uint64(i), ops) {
			fail("curve_fanout chunk %d is wrong", i)
		}
	}
	return elapsed
}
