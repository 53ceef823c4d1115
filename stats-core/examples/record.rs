//! Records a few stats from several threads and prints the snapshot a pipe
//! would serve: `cargo run -p stats-core --example record`.

use std::thread;

use stats_core::{Registry, Value};

fn main() {
    let registry = Registry::new();
    let requests = registry.counter("http.requests[method=GET]");
    thread::scope(|s| {
        for worker in 0..4 {
            let requests = requests.clone();
            let registry = &registry;
            s.spawn(move || {
                for i in 0..1000 {
                    requests.incr();
                    registry.incr("bytes sent", 512);
                    if i % 100 == 0 {
                        registry.set(&format!("worker {worker}: last batch"), i);
                    }
                }
            });
        }
    });
    registry.incr("latency seconds total", 0.25);
    registry.set("temperature", f64::NAN);

    let mut text = Vec::new();
    registry.render_into(&mut text);
    print!("{}", String::from_utf8_lossy(&text));
    assert_eq!(requests.value(), Value::Int(4000));
}
