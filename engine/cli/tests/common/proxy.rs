//! A TCP proxy the test controls, between dbintel and a real server: it
//! forwards, pauses (holds every byte, connections stay open — a server
//! that hangs), blackholes (accepts new connections and never answers —
//! a host that vanished behind a firewall) or resets (closes everything —
//! a network cut).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward = 0,
    /// Existing and new connections stay open but nothing is passed on.
    Pause = 1,
    /// New connections are accepted and never answered; existing ones are
    /// paused.
    Blackhole = 2,
}

pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listens");
        let port = listener.local_addr().expect("address").port();
        let mode = Arc::new(AtomicU8::new(Mode::Forward as u8));
        let connections: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (m, c, a) = (mode.clone(), connections.clone(), accepted.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                a.fetch_add(1, SeqCst);
                if let Ok(clone) = client.try_clone() {
                    c.lock().unwrap().push(clone);
                }
                if m.load(SeqCst) == Mode::Blackhole as u8 {
                    // hold it open, answer nothing
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                if let Ok(clone) = server.try_clone() {
                    c.lock().unwrap().push(clone);
                }
                for (from, to) in [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())] {
                    let (Ok(mut from), Ok(mut to)) = (from, to) else { continue };
                    let m = m.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            // paused: hold the bytes until forwarding resumes
                            while m.load(SeqCst) != Mode::Forward as u8 {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Proxy { port, mode, connections, accepted }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, SeqCst);
    }

    /// Closes every connection it carries (both ends), like a cut cable.
    pub fn reset(&self) {
        for stream in self.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Forward);
        self.reset();
    }
}
