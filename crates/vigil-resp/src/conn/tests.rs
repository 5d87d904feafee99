//! The connection loop's own tests: what a handler's failure must not leak.

use super::*;

/// Answers PING; panics on anything else.
struct Panicky;

impl Service for Panicky {
    type State = ();

    async fn call(&self, conn: &mut Conn<()>, args: Vec<Bytes>) {
        if args[0].eq_ignore_ascii_case(b"ping") {
            conn.reply(Reply::simple("PONG"));
        } else {
            panic!("handler bug");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_frees_its_client_slot() {
    let shared = Arc::new(Shared::new(
        Ident {
            server: "redis",
            version: "7.0.15",
            mode: "standalone",
        },
        Limits::default(),
        None,
        1,
        1 << 20,
    ));
    let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, Arc::new(Panicky), shared.clone()));
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 7];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
    assert_eq!(shared.clients.len(), 1);
    c.write_all(b"BOOM\r\n").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !shared.clients.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        shared.clients.len(),
        0,
        "the panicked connection left the registry"
    );
    shared.shutdown.cancel();
    let _ = server.await;
}
