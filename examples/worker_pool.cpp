// A worker pool with Job and Result structs: one fiber allocates jobs, a pool
// of workers turns each Job into a Result, and one fiber prints the results.
// The pool closes `results` once every worker is done, which ends the printer.
// (The Go original draws random numbers, runs 100 jobs on 10 workers and
// sleeps 2 s per job; here: fixed numbers, 20 jobs, 5 workers, 20 ms.)
//
//   type Job struct { id, randomno int }
//   type Result struct { job Job; sumofdigits int }
//   func worker(wg *sync.WaitGroup) {
//       for job := range jobs { results <- Result{job, digits(job.randomno)} }
//       wg.Done()
//   }
//   func createWorkerPool(n int) {
//       var wg sync.WaitGroup
//       for i := 0; i < n; i++ { wg.Add(1); go worker(&wg) }
//       wg.Wait(); close(results)
//   }
//   main: go allocate(20); go result(done); createWorkerPool(5); <-done
//         fmt.Println("total time taken", time.Since(start).Seconds(), "seconds")
#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

struct Job {
  int id;
  int number;
};
struct Result {
  Job job;
  int sum_of_digits;
};

int digits(int number) {
  int sum = 0;
  for (int n = number; n != 0; n /= 10) sum += n % 10;
  goro::this_fiber::sleep_for(20ms);  // pretend this is expensive
  return sum;
}

void worker(goro::RecvChannel<Job> jobs, goro::SendChannel<Result> results, goro::WaitGroup* wg) {
  for (Job job : jobs) results.send(Result{job, digits(job.number)});
  wg->done();
}

void create_worker_pool(int workers, goro::RecvChannel<Job> jobs, goro::SendChannel<Result> results) {
  goro::WaitGroup wg;
  for (int i = 0; i < workers; ++i) {
    wg.add(1);
    goro::go(worker, jobs, results, &wg);
  }
  wg.wait();
  results.close();
}

void allocate(int n, goro::SendChannel<Job> jobs) {
  for (int i = 0; i < n; ++i) jobs.send(Job{i, (i * 7919 + 13) % 999});  // fixed "random" numbers
  jobs.close();
}

void print_results(goro::RecvChannel<Result> results, goro::SendChannel<bool> done) {
  for (Result r : results) {
    std::printf("Job id %d, input number %d, sum of digits %d\n", r.job.id, r.job.number, r.sum_of_digits);
  }
  done.send(true);
}

int main() {
  goro::run([] {
    auto start = std::chrono::steady_clock::now();
    goro::Channel<Job> jobs(10);
    goro::Channel<Result> results(10);
    goro::Channel<bool> done;
    goro::go(allocate, 20, jobs);
    goro::go(print_results, results, done);
    create_worker_pool(5, jobs, results);
    done.recv();
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::printf("total time taken %.2f seconds\n", took.count());
  });
}
