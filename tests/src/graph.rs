//! A stand-in of the Instagram Send API on loopback: keeps every request
//! body and answers with a message id, as Meta does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

/// The Send API stand-in: keeps every request body.
#[derive(Clone, Default)]
pub struct Graph {
    pub bodies: Arc<Mutex<Vec<Value>>>,
}

impl Graph {
    pub async fn start() -> (Graph, String) {
        let graph = Graph::default();
        let bodies = graph.bodies.clone();
        let router = axum::Router::new().route(
            "/v23.0/{ig_id}/messages",
            post(move |Json(body): Json<Value>| {
                let bodies = bodies.clone();
                async move {
                    let mut bodies = bodies.lock().unwrap();
                    bodies.push(body.clone());
                    let id = format!("m_{}", bodies.len());
                    Json(json!({"recipient_id": body["recipient"]["id"], "message_id": id}))
                }
            }),
        );
        let addr = crate::serve(router).await;
        (graph, format!("http://{addr}"))
    }

    pub fn to(&self, customer: &str) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["recipient"]["id"] == customer)
            .cloned()
            .collect()
    }

    pub async fn wait_for_text(&self, customer: &str, text: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(found) = self
                .to(customer)
                .into_iter()
                .find(|b| b["message"]["text"] == text)
            {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{customer} never got {text:?}; got {:?}",
                self.to(customer)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
