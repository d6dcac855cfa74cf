//! What the OpenAI-agent tests share: the test server, in-process.

use std::io::{Read, Write};

use serde_json::Value;

/// The test server, in this process on a port the system picks; stopped on drop.
pub struct Mock {
    pub server: mock_llm::Server,
    pub port: u16,
}

impl Mock {
    pub fn start(args: &[&str]) -> Mock {
        let args = mock_llm::parse_args(args.iter().map(|a| a.to_string()))
            .expect("mock-llm arguments")
            .expect("not --help");
        let server = mock_llm::Server::start(args).expect("start mock-llm");
        let port = server.port();
        Mock { server, port }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn get(&self, path: &str) -> Value {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let body = raw.split_once("\r\n\r\n").expect("an HTTP response").1;
        serde_json::from_str(body).expect("JSON stats")
    }

    pub fn stats(&self) -> Value {
        self.get("/stats")
    }

    /// Start times (µs) of the requests with `tag`, in order.
    pub fn starts(stats: &Value, tag: &str) -> Vec<u64> {
        let mut v: Vec<u64> = stats["log"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["tag"] == tag)
            .map(|e| e["t_us"].as_u64().unwrap())
            .collect();
        v.sort_unstable();
        v
    }
}
