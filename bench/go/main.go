// Command gorobench is the Go side of goro's side-by-side benchmark.
//
// Usage: gorobench <workload> <workers> [n]
// (the curve_* workloads of curves.go: gorobench <workload> <workers> [n [ops]])
//
// It runs one workload with runtime.GOMAXPROCS(workers) and prints exactly one
// line to stdout: "<workload> <value> <unit>". The optional n overrides the
// workload's size (see sizes below and bench/README.md); bench/compare.sh only
// passes it when asked to. The workloads are mirrored one for one by
// bench/fiber/main.cpp (Boost.Fiber) and bench/peer/goro_peer.cpp (goro):
// keep the three in step when changing any of them.
//
// Every workload checks its own result; a mismatch prints a message to stderr
// and exits with status 1. Usage errors exit with status 2.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fixed parameters that the optional n does not change.
const (
	spawnJoinRounds  = 10   // rounds of "spawn_join"
	mutexIncrements  = 1000 // increments per fiber in "mutex"
	waitgroupRounds  = 100  // rounds of "waitgroup"
	ctxCancelRounds  = 10   // rounds of "ctx_cancel"
	bufferedCapacity = 1024 // channel capacity in buffered_1p1c / buffered_4p4c
	poolCapacity     = 100  // jobs/results capacity in worker_pool
	poolWorkers      = 4    // workers in worker_pool
	skynetFanout     = 10   // children per skynet node
)

// A workload runs with size n and returns its figure; it calls fail on a
// wrong result.
type workload struct {
	defaultN int64
	unit     string
	run      func(n int64) float64
	valid    func(n int64) bool // nil: any n >= 1
}

var workloads = map[string]workload{
	"spawn_join":    {100_000, "ns/op", spawnJoin, nil},
	"pingpong":      {200_000, "ns/op", pingpong, nil},
	"buffered_1p1c": {2_000_000, "ns/op", buffered1p1c, nil},
	"buffered_4p4c": {2_000_000, "ns/op", buffered4p4c, func(n int64) bool { return n%4 == 0 }},
	"select4":       {1_000_000, "ns/op", select4, nil},
	"mutex":         {1000, "ns/op", mutex, nil},
	"worker_pool":   {2_000_000, "ns/op", workerPool, nil},
	"waitgroup":     {1000, "ns/op", waitgroup, nil},
	"ctx_cancel":    {10_000, "ns/op", ctxCancel, nil},
	"parked_memory": {100_000, "bytes/fiber", parkedMemory, nil},
	"skynet":        {1_000_000, "ns/op", skynet, isPowerOfFanout},
}

var workloadOrder = []string{
	"spawn_join", "pingpong", "buffered_1p1c", "buffered_4p4c", "select4", "mutex",
	"worker_pool", "waitgroup", "ctx_cancel", "parked_memory", "skynet",
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "gorobench: %s\nusage: gorobench <workload> <workers> [n]\n"+
		"       gorobench <curve workload> <workers> [n [ops]]\nworkloads: %s\ncurve workloads: %s\n",
		msg, strings.Join(workloadOrder, " "), strings.Join(curveOrder, " "))
	os.Exit(2)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gorobench: verification failed: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 3 || len(os.Args) > 5 {
		usage("wrong number of arguments")
	}
	name := os.Args[1]
	w, isPlain := workloads[name]
	cw, isCurve := curveWorkloads[name]
	if !isPlain && !isCurve {
		usage("unknown workload " + strconv.Quote(name))
	}
	if isPlain && len(os.Args) == 5 {
		usage(name + " takes one size")
	}
	workers, err := strconv.Atoi(os.Args[2])
	if err != nil || workers < 1 {
		usage("workers must be a positive integer")
	}
	n, ops, unit, valid := w.defaultN, int64(0), w.unit, w.valid
	if isCurve {
		n, ops, unit, valid = cw.defaultN, cw.defaultOps, cw.unit, cw.valid
	}
	if len(os.Args) >= 4 {
		n, err = strconv.ParseInt(os.Args[3], 10, 64)
		if err != nil || n < 1 || (valid != nil && !valid(n)) {
			usage("invalid size for " + name)
		}
	}
	if len(os.Args) == 5 {
		ops, err = strconv.ParseInt(os.Args[4], 10, 64)
		if err != nil || ops < 1 {
			usage("invalid ops for " + name)
		}
	}
	runtime.GOMAXPROCS(workers)
	var value float64
	if isPlain {
		value = w.run(n)
	} else {
		value = cw.run(n, ops)
	}
	fmt.Printf("%s %.2f %s\n", name, value, unit)
}

// perOp converts the time since start into nanoseconds per operation.
func perOp(start time.Time, ops int64) float64 {
	return float64(time.Since(start).Nanoseconds()) / float64(ops)
}

// spawn_join: 10 rounds of: n fibers each add their index to their own slot;
// join all. (10 x 100,000 rather than 1 x 1,000,000: Boost.Fiber keeps every
// not-yet-run fiber's stack, and 1M of them take 20 s of page faults.)
func spawnJoin(n int64) float64 {
	slots := make([]int64, n)
	var wg sync.WaitGroup
	start := time.Now()
	for r := 0; r < spawnJoinRounds; r++ {
		wg.Add(int(n))
		for i := int64(0); i < n; i++ {
			go func(i int64) {
				slots[i] += i
				wg.Done()
			}(i)
		}
		wg.Wait()
	}
	elapsed := perOp(start, n*spawnJoinRounds)
	var sum int64
	for _, v := range slots {
		sum += v
	}
	if want := spawnJoinRounds * n * (n - 1) / 2; sum != want {
		fail("spawn_join sum %d, want %d", sum, want)
	}
	return elapsed
}

// pingpong: main sends i on ping, a partner fiber echoes it on pong; n round trips.
func pingpong(n int64) float64 {
	ping, pong := make(chan int64), make(chan int64)
	start := time.Now()
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	var sum int64
	for i := int64(0); i < n; i++ {
		ping <- i
		sum += <-pong
	}
	close(ping)
	elapsed := perOp(start, n)
	if sum != n*(n-1)/2 {
		fail("pingpong sum %d, want %d", sum, n*(n-1)/2)
	}
	return elapsed
}

// buffered_1p1c: one producer fiber sends 0..n-1 into a capacity-1024
// channel and closes it; main receives until closed.
func buffered1p1c(n int64) float64 {
	ch := make(chan int64, bufferedCapacity)
	start := time.Now()
	go func() {
		for i := int64(0); i < n; i++ {
			ch <- i
		}
		close(ch)
	}()
	var sum int64
	for v := range ch {
		sum += v
	}
	elapsed := perOp(start, n)
	if sum != n*(n-1)/2 {
		fail("buffered_1p1c sum %d, want %d", sum, n*(n-1)/2)
	}
	return elapsed
}

// buffered_4p4c: 4 producers send n/4 items each into one capacity-1024
// channel, 4 consumers drain it; the channel is closed once all producers are
// done.
func buffered4p4c(n int64) float64 {
	const producers, consumers = 4, 4
	ch := make(chan int64, bufferedCapacity)
	var sums [consumers]int64
	var prodWG, consWG sync.WaitGroup
	per := n / producers
	start := time.Now()
	prodWG.Add(producers)
	for p := int64(0); p < producers; p++ {
		go func(p int64) {
			for i := p * per; i < (p+1)*per; i++ {
				ch <- i
			}
			prodWG.Done()
		}(p)
	}
	consWG.Add(consumers)
	for c := 0; c < consumers; c++ {
		go func(c int) {
			var s int64
			for v := range ch {
				s += v
			}
			sums[c] = s
			consWG.Done()
		}(c)
	}
	prodWG.Wait()
	close(ch)
	consWG.Wait()
	elapsed := perOp(start, n)
	var sum int64
	for _, s := range sums {
		sum += s
	}
	if sum != n*(n-1)/2 {
		fail("buffered_4p4c sum %d, want %d", sum, n*(n-1)/2)
	}
	return elapsed
}

// select4: four capacity-1 channels each hold one token (its own index);
// main selects over all four n times and puts the token it got back into the
// same channel, so every case is always ready.
func select4(n int64) float64 {
	var chs [4]chan int
	for i := range chs {
		chs[i] = make(chan int, 1)
		chs[i] <- i
	}
	var counts [4]int64
	bad := 0
	take := func(idx, v int) {
		if v != idx {
			bad++
		}
		counts[idx]++
		chs[idx] <- v
	}
	start := time.Now()
	for k := int64(0); k < n; k++ {
		select {
		case v := <-chs[0]:
			take(0, v)
		case v := <-chs[1]:
			take(1, v)
		case v := <-chs[2]:
			take(2, v)
		case v := <-chs[3]:
			take(3, v)
		}
	}
	elapsed := perOp(start, n)
	total := counts[0] + counts[1] + counts[2] + counts[3]
	if bad != 0 || total != n {
		fail("select4 total %d (want %d), %d tokens in the wrong channel", total, n, bad)
	}
	if n >= 1000 {
		for i, c := range counts {
			if c == 0 {
				fail("select4 never chose channel %d in %d selects", i, n)
			}
		}
	}
	return elapsed
}

// mutex: n fibers each increment a shared counter 1000 times under a mutex.
func mutex(n int64) float64 {
	var mu sync.Mutex
	var counter int64
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(int(n))
	for f := int64(0); f < n; f++ {
		go func() {
			for i := 0; i < mutexIncrements; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	elapsed := perOp(start, n*mutexIncrements)
	if counter != n*mutexIncrements {
		fail("mutex counter %d, want %d", counter, n*mutexIncrements)
	}
	return elapsed
}

// worker_pool: a sender fiber puts jobs 0..n-1 on a capacity-100 channel,
// 4 workers answer job*2 on a capacity-100 results channel, main sums the
// results; results is closed once every worker is done.
func workerPool(n int64) float64 {
	jobs := make(chan int64, poolCapacity)
	results := make(chan int64, poolCapacity)
	var wg sync.WaitGroup
	start := time.Now()
	go func() {
		for i := int64(0); i < n; i++ {
			jobs <- i
		}
		close(jobs)
	}()
	wg.Add(poolWorkers)
	for w := 0; w < poolWorkers; w++ {
		go func() {
			for j := range jobs {
				results <- j * 2
			}
			wg.Done()
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()
	var sum, count int64
	for r := range results {
		sum += r
		count++
	}
	elapsed := perOp(start, n)
	if count != n || sum != n*(n-1) {
		fail("worker_pool got %d results summing to %d, want %d and %d", count, sum, n, n*(n-1))
	}
	return elapsed
}

// waitgroup: 100 rounds of n fibers that each mark their slot and call
// wg.Done() on one WaitGroup while main waits.
func waitgroup(n int64) float64 {
	slots := make([]int32, n)
	var wg sync.WaitGroup
	start := time.Now()
	for r := 0; r < waitgroupRounds; r++ {
		wg.Add(int(n))
		for i := int64(0); i < n; i++ {
			go func(i int64) {
				slots[i]++
				wg.Done()
			}(i)
		}
		wg.Wait()
	}
	elapsed := perOp(start, n*waitgroupRounds)
	for i, v := range slots {
		if v != waitgroupRounds {
			fail("waitgroup slot %d ran %d times, want %d", i, v, waitgroupRounds)
		}
	}
	return elapsed
}

// ctx_cancel: 10 rounds of: n child contexts of one cancellable parent, each
// watched by a fiber blocked on <-ctx.Done(); once all watchers are running
// the parent is cancelled and main waits until every watcher saw it.
func ctxCancel(n int64) float64 {
	seen := make([]int32, n)
	cancels := make([]context.CancelFunc, n)
	var ready, finished sync.WaitGroup
	start := time.Now()
	for r := 0; r < ctxCancelRounds; r++ {
		parent, cancelParent := context.WithCancel(context.Background())
		ready.Add(int(n))
		finished.Add(int(n))
		for i := int64(0); i < n; i++ {
			ctx, cancel := context.WithCancel(parent)
			cancels[i] = cancel
			go func(i int64, ctx context.Context) {
				ready.Done()
				<-ctx.Done()
				if ctx.Err() == context.Canceled {
					seen[i]++
				}
				finished.Done()
			}(i, ctx)
		}
		ready.Wait()
		cancelParent()
		finished.Wait()
		for _, cancel := range cancels {
			cancel() // already cancelled through the parent: a no-op, as in C++
		}
	}
	elapsed := perOp(start, n*ctxCancelRounds)
	for i, v := range seen {
		if v != ctxCancelRounds {
			fail("ctx_cancel watcher %d saw %d cancellations, want %d", i, v, ctxCancelRounds)
		}
	}
	return elapsed
}

// residentBytes reads the resident set size from /proc/self/statm.
func residentBytes() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gorobench:", err)
		os.Exit(1)
	}
	fields := strings.Fields(string(data))
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gorobench: bad /proc/self/statm:", err)
		os.Exit(1)
	}
	return pages * int64(os.Getpagesize())
}

// parked_memory: n fibers each signal that they started and then block on
// one channel; the RSS growth once all are blocked, divided by n, is the
// figure. Closing the channel releases them all.
func parkedMemory(n int64) float64 {
	release := make(chan struct{})
	var started, finished sync.WaitGroup
	var woke int64
	runtime.GC()
	before := residentBytes()
	started.Add(int(n))
	finished.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func() {
			started.Done()
			<-release
			atomic.AddInt64(&woke, 1)
			finished.Done()
		}()
	}
	started.Wait()
	after := residentBytes()
	close(release)
	finished.Wait()
	if woke != n {
		fail("parked_memory woke %d fibers, want %d", woke, n)
	}
	return float64(after-before) / float64(n)
}

func isPowerOfFanout(n int64) bool {
	for n > 1 && n%skynetFanout == 0 {
		n /= skynetFanout
	}
	return n == 1
}

// skynetNode sends the sum of the leaf ids num..num+size-1 on c: a leaf sends
// its own id, an inner node spawns 10 children that answer on a channel of
// capacity 10 (so no child ever blocks on its send) and sums their answers.
func skynetNode(c chan<- int64, num, size int64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int64, skynetFanout)
	sub := size / skynetFanout
	for i := int64(0); i < skynetFanout; i++ {
		go skynetNode(rc, num+i*sub, sub)
	}
	var sum int64
	for i := 0; i < skynetFanout; i++ {
		sum += <-rc
	}
	c <- sum
}

// skynet: the classic skynet benchmark with n leaves (a power of 10); the
// figure is per fiber spawned, leaves and inner nodes ((10n-1)/9 in all).
func skynet(n int64) float64 {
	fibers := (skynetFanout*n - 1) / (skynetFanout - 1)
	c := make(chan int64, 1)
	start := time.Now()
	go skynetNode(c, 0, n)
	sum := <-c
	elapsed := perOp(start, fibers)
	if sum != n*(n-1)/2 {
		fail("skynet sum %d, want %d", sum, n*(n-1)/2)
	}
	return elapsed
}
