//! The `mock-llm` binary: see the library's docs for endpoints and directives.

use std::io::Write;
use std::time::Duration;

fn main() {
    let args = match mock_llm::parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{}", mock_llm::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("mock-llm: {e}");
            std::process::exit(2);
        }
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        rt.worker_threads(args.threads);
    }
    let rt = rt.enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("mock-llm: {e}");
        std::process::exit(1);
    }
}

async fn run(args: mock_llm::Args) -> std::io::Result<()> {
    let listener = mock_llm::bind(args.port)?;
    let port = listener.local_addr()?.port();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{port}")?;
        out.flush()?;
    }
    if !args.quiet {
        eprintln!(
            "mock-llm: listening on 127.0.0.1:{port} (latency {:?} ± {:?})",
            args.latency, args.jitter
        );
    }
    if let Some(s) = args.max_seconds {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(s)).await;
            eprintln!("mock-llm: --max-seconds {s} reached; exiting");
            std::process::exit(0);
        });
    }
    mock_llm::serve(listener, args).await
}
