// The service the load generator runs: one string echoed back, the payload
// size chosen per run. `echo_bin` carries a binary, for the zero-copy test.
namespace rs weft_bench

service Bench {
  string echo(1: string msg),
  binary echo_bin(1: binary data),
}
