// Jobs and results: three workers receive from a jobs channel and send to a
// results channel. The worker's parameters are directional views, so it
// cannot send on `jobs` or receive from `results` (that would not compile).
//
//   func worker(id int, jobs <-chan int, results chan<- int) {
//       for j := range jobs {
//           fmt.Println("worker", id, "started  job", j)
//           time.Sleep(100 * time.Millisecond)     // 1 s in the Go original
//           fmt.Println("worker", id, "finished job", j)
//           results <- j * 2
//       }
//   }
//   func main() {
//       jobs, results := make(chan int, 5), make(chan int, 5)
//       for w := 1; w <= 3; w++ { go worker(w, jobs, results) }
//       for j := 1; j <= 5; j++ { jobs <- j }
//       close(jobs)
//       for a := 1; a <= 5; a++ { <-results }
//   }
#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

void worker(int id, goro::RecvChannel<int> jobs, goro::SendChannel<int> results) {
  for (int j : jobs) {  // for j := range jobs: ends when jobs is closed and drained
    std::printf("worker %d started  job %d\n", id, j);
    goro::this_fiber::sleep_for(100ms);
    std::printf("worker %d finished job %d\n", id, j);
    results.send(j * 2);
  }
}

int main() {
  goro::run([] {
    constexpr int kJobs = 5;
    goro::Channel<int> jobs(kJobs);
    goro::Channel<int> results(kJobs);
    for (int w = 1; w <= 3; ++w) goro::go(worker, w, jobs, results);  // Channel -> views, implicitly

    for (int j = 1; j <= kJobs; ++j) jobs.send(j);
    jobs.close();
    for (int a = 1; a <= kJobs; ++a) results.recv();
  });
}
