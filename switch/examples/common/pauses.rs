//! The tail report of the pause examples (`hot_account_pauses`, `duplicate_window_pauses`): each
//! times one operation N times and wants the same summary of the slowest, with where in the
//! sequence they were, because the position tells which growth step caused a pause.

use std::time::Duration;

/// Prints mean, p99, p99.99 and max of `times` (each an operation's time and its position), then
/// the operations over 1 ms, slowest first. `head` starts the first line, `what` names the
/// operations ("decisions", "claims").
pub fn print_tail(head: &str, what: &str, mut times: Vec<(Duration, u64)>) {
    if times.is_empty() {
        println!("{head}: nothing timed");
        return;
    }
    let n = times.len();
    let total: Duration = times.iter().map(|(d, _)| *d).sum();
    times.sort_unstable();
    let pct = |p: f64| times[((n as f64 * p) as usize).min(n - 1)].0;
    println!(
        "{head}: mean {:.2} us, p99 {:.2} us, p99.99 {:.1} us, max {:.1} ms",
        total.as_secs_f64() * 1e6 / n as f64,
        pct(0.99).as_secs_f64() * 1e6,
        pct(0.9999).as_secs_f64() * 1e6,
        times.last().map_or(0.0, |(d, _)| d.as_secs_f64() * 1e3),
    );
    let over: Vec<String> = times
        .iter()
        .rev()
        .take_while(|(d, _)| *d > Duration::from_millis(1))
        .map(|(d, i)| format!("{:.1} ms at #{i}", d.as_secs_f64() * 1e3))
        .collect();
    println!(
        "{what} over 1 ms: {} [{}]",
        over.len(),
        over.iter().take(12).cloned().collect::<Vec<_>>().join(", ")
    );
}
