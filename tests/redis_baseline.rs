//! The baseline the mesh view is measured against: a node registry in a real `redis-server` (Debian
//! package) on loopback, built the way one is usually built on Redis: each advert as JSON under
//! `node:{id}`, a liveness key `alive:{id}` with a TTL, index sets per GPU vendor, model and
//! region, a sorted set by VRAM, and a set of every node. A query reads the most selective index,
//! fetches the candidates' adverts and liveness keys in one round trip (MGET), parses them, and
//! applies the remaining filters, as the view does.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agent_registry_types::{DiscoveryQuery, NodeAdvert};

/// A RESP reply.
#[derive(Debug, PartialEq)]
pub enum Reply {
    Status(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

pub struct Redis {
    server: Child,
    conn: BufReader<TcpStream>,
    dir: std::path::PathBuf,
}

impl Redis {
    /// Starts `redis-server` on a free loopback port, without persistence. None when it is not
    /// installed (`apt-get install redis-server`).
    pub fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = std::env::temp_dir().join(format!("ripple-redis-{port}"));
        std::fs::create_dir_all(&dir).ok()?;
        let server = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
                stream.set_nodelay(true).ok()?;
                let mut redis = Self { server, conn: BufReader::new(stream), dir };
                if redis.command(&["PING"]) == Reply::Status("PONG".into()) {
                    return Some(redis);
                }
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn send(&mut self, args: &[&[u8]]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.conn.get_mut().write_all(&out).expect("write to redis");
    }

    fn read(&mut self) -> Reply {
        let mut line = String::new();
        self.conn.read_line(&mut line).expect("read from redis");
        let (kind, rest) = line.trim_end().split_at(1);
        match kind {
            "+" => Reply::Status(rest.into()),
            "-" => panic!("redis error: {rest}"),
            ":" => Reply::Int(rest.parse().expect("integer reply")),
            "$" => {
                let len: i64 = rest.parse().expect("bulk length");
                if len < 0 {
                    return Reply::Bulk(None);
                }
                let mut buf = vec![0; len as usize + 2];
                self.conn.read_exact(&mut buf).expect("bulk body");
                buf.truncate(len as usize);
                Reply::Bulk(Some(buf))
            }
            "*" => {
                let n: i64 = rest.parse().expect("array length");
                Reply::Array((0..n.max(0)).map(|_| self.read()).collect())
            }
            other => panic!("unexpected redis reply {other}{rest}"),
        }
    }

    pub fn command(&mut self, args: &[&str]) -> Reply {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&bytes);
        self.read()
    }

    /// Sends every command, then reads every reply (one round trip).
    pub fn pipeline(&mut self, commands: &[Vec<String>]) -> Vec<Reply> {
        for c in commands {
            let bytes: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
            self.send(&bytes);
        }
        commands.iter().map(|_| self.read()).collect()
    }

    /// Registers `adverts` (id, advert, alive) with their index entries.
    pub fn load(&mut self, adverts: &[(String, NodeAdvert, bool)]) {
        let mut commands = vec![vec!["FLUSHALL".to_string()]];
        for (id, advert, alive) in adverts {
            let json = serde_json::to_string(advert).expect("advert json");
            commands.push(vec!["SET".into(), format!("node:{id}"), json]);
            if *alive {
                commands.push(vec!["SET".into(), format!("alive:{id}"), "1".into(), "EX".into(), "600".into()]);
            }
            commands.push(vec!["SADD".into(), "idx:all".into(), id.clone()]);
            for gpu in &advert.compute.gpus {
                commands.push(vec!["SADD".into(), format!("idx:gpu:{}", gpu.vendor.to_lowercase()), id.clone()]);
            }
            for model in &advert.inference.models_loaded {
                commands.push(vec!["SADD".into(), format!("idx:model:{}", model.to_lowercase()), id.clone()]);
            }
            commands.push(vec![
                "SADD".into(),
                format!("idx:region:{}", advert.network.region.to_lowercase()),
                id.clone(),
            ]);
            if let Some(vram) = advert.max_vram_gb() {
                commands.push(vec!["ZADD".into(), "idx:vram".into(), vram.to_string(), id.clone()]);
            }
        }
        for chunk in commands.chunks(1000) {
            self.pipeline(chunk);
        }
    }

    /// The matching nodes' ids and adverts, online first then by name, at most `limit`.
    pub fn query(&mut self, q: &DiscoveryQuery) -> Vec<(String, NodeAdvert, bool)> {
        let lower = |s: &String| s.to_lowercase();
        let candidates = if let Some(model) = &q.model {
            self.command(&["SMEMBERS", &format!("idx:model:{}", lower(model))])
        } else if let Some(vendor) = &q.gpu_vendor {
            self.command(&["SMEMBERS", &format!("idx:gpu:{}", lower(vendor))])
        } else if let Some(region) = &q.region {
            self.command(&["SMEMBERS", &format!("idx:region:{}", lower(region))])
        } else if let Some(min) = q.min_vram_gb {
            self.command(&["ZRANGEBYSCORE", "idx:vram", &min.to_string(), "+inf"])
        } else {
            self.command(&["SMEMBERS", "idx:all"])
        };
        let Reply::Array(ids) = candidates else { panic!("index read: {candidates:?}") };
        let ids: Vec<String> = ids
            .into_iter()
            .filter_map(|r| match r {
                Reply::Bulk(Some(b)) => String::from_utf8(b).ok(),
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            return vec![];
        }
        let adverts = [vec!["MGET".to_string()], ids.iter().map(|id| format!("node:{id}")).collect()].concat();
        let alive = [vec!["MGET".to_string()], ids.iter().map(|id| format!("alive:{id}")).collect()].concat();
        let mut replies = self.pipeline(&[adverts, alive]).into_iter();
        let (Some(Reply::Array(adverts)), Some(Reply::Array(alive))) = (replies.next(), replies.next()) else {
            panic!("MGET replies");
        };
        let mut found: Vec<(String, NodeAdvert, bool)> = ids
            .into_iter()
            .zip(adverts.into_iter().zip(alive))
            .filter_map(|(id, (advert, alive))| {
                let Reply::Bulk(Some(json)) = advert else { return None };
                let advert: NodeAdvert = serde_json::from_slice(&json).ok()?;
                let online = matches!(alive, Reply::Bulk(Some(_)))
                    && advert.availability == agent_registry_types::Availability::Online;
                (q.matches(&advert) && (online || !q.online_only)).then_some((id, advert, online))
            })
            .collect();
        found.sort_by(|a, b| {
            b.2.cmp(&a.2).then_with(|| a.1.agent_name.cmp(&b.1.agent_name)).then_with(|| a.0.cmp(&b.0))
        });
        if let Some(limit) = q.limit {
            found.truncate(limit as usize);
        }
        found
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
