//! Reads one query per line on stdin and prints, tab-separated, the query
//! and either `OK <type>\t<canonical form>` or Prometheus's API error text.
//! Used to compare ember's parser with a running Prometheus.
#![allow(clippy::print_stdout)]

use std::io::BufRead;

fn main() {
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        match ember_promql::parse(&line) {
            Ok(e) => println!("{line}\tOK {}\t{e}", e.value_type().as_str()),
            Err(err) => println!("{line}\tinvalid parameter \"query\": {err}"),
        }
    }
}
