//! A webhook receiver on loopback: records every JSON POST and answers what the test says.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

#[derive(Debug, Clone)]
pub struct Webhook {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<serde_json::Value>>>,
    answer: Arc<Mutex<(u16, String)>>,
}

async fn read_request(socket: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        while buffer.len() < end + 4 + length {
            let read = socket.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        return Some(buffer[end + 4..end + 4 + length].to_vec());
    }
}

impl Webhook {
    pub async fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let webhook = Webhook {
            addr: listener.local_addr().unwrap(),
            received: Arc::default(),
            answer: Arc::new(Mutex::new((200, String::new()))),
        };
        let (received, answer) = (webhook.received.clone(), webhook.answer.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (received, answer) = (received.clone(), answer.clone());
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut socket).await else {
                        return;
                    };
                    if let Ok(json) = serde_json::from_slice(&body) {
                        received.lock().unwrap().push(json);
                    }
                    let (status, text) = answer.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        webhook
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn answer(&self, status: u16, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned());
    }

    pub fn received(&self) -> Vec<serde_json::Value> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until a received body has `kind` (the deployment event kind).
    pub async fn wait_for_kind(&self, kind: &str) -> Vec<serde_json::Value> {
        for _ in 0..400 {
            let received = self.received();
            if received.iter().any(|body| body["kind"] == kind) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the webhook never received `{kind}`: {:#?}", self.received());
    }
}
