//! A blocking gRPC client for integration tests: typed unary calls through tonic (the prost
//! types vecgate generates from Qdrant's protos), with the credentials as qdrant-client sends
//! them, and raw HTTP/2 exchanges for what a well-behaved client never sends (compressed or
//! several messages, unknown fields, other content types).

// tonic's own error type, returned as tonic returns it.
#![allow(clippy::result_large_err)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use std::time::Duration;
use tonic::codec::ProstCodec;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

/// How a call carries its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    None,
    /// `api-key: <token>` (qdrant-client's `api_key=`).
    ApiKey(&'a str),
    /// `authorization: Bearer <token>` (qdrant-client's `auth_token_provider=`).
    Bearer(&'a str),
}

/// An answer of a raw exchange.
#[derive(Debug)]
pub struct RawAnswer {
    pub http_status: u16,
    pub code: Option<Code>,
    pub message: String,
    pub body: Bytes,
}

pub struct GrpcClient {
    rt: tokio::runtime::Runtime,
    channel: Channel,
    url: String,
}

impl GrpcClient {
    /// A client of the gRPC server at `url` (`http://host:port`).
    pub fn connect(url: &str) -> GrpcClient {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let channel = rt.block_on(async {
            Endpoint::from_shared(url.to_string())
                .expect("endpoint")
                .timeout(Duration::from_secs(60))
                .connect_lazy()
        });
        GrpcClient { rt, channel, url: url.to_string() }
    }

    /// One unary call of the method at `path` (`/qdrant.Points/Query`).
    pub fn call<Req, Resp>(&self, path: &'static str, request: Req, credential: Credential<'_>) -> Result<Resp, tonic::Status>
    where
        Req: Message + Send + Sync + 'static,
        Resp: Message + Default + Send + Sync + 'static,
    {
        self.call_with(path, request, credential, &[])
    }

    /// [`GrpcClient::call`] with extra metadata.
    pub fn call_with<Req, Resp>(
        &self,
        path: &'static str,
        request: Req,
        credential: Credential<'_>,
        metadata: &[(&'static str, &str)],
    ) -> Result<Resp, tonic::Status>
    where
        Req: Message + Send + Sync + 'static,
        Resp: Message + Default + Send + Sync + 'static,
    {
        let mut request = tonic::Request::new(request);
        let md = request.metadata_mut();
        match credential {
            Credential::None => {}
            Credential::ApiKey(t) => {
                md.insert("api-key", MetadataValue::try_from(t).expect("token"));
            }
            Credential::Bearer(t) => {
                md.insert("authorization", MetadataValue::try_from(format!("Bearer {t}")).expect("token"));
            }
        }
        for (k, v) in metadata {
            md.append(*k, MetadataValue::try_from(*v).expect("metadata value"));
        }
        let channel = self.channel.clone();
        self.rt.block_on(async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            let path = http::uri::PathAndQuery::from_static(path);
            grpc.unary(request, path, ProstCodec::<Req, Resp>::default()).await.map(tonic::Response::into_inner)
        })
    }

    /// One HTTP/2 POST of `body` (framed by the caller) to `path` with `headers`
    /// (`content-type: application/grpc` unless given).
    pub fn raw(&self, path: &str, body: Bytes, headers: &[(&str, &str)]) -> RawAnswer {
        let uri = format!("{}{path}", self.url);
        self.rt.block_on(async move {
            let client = Client::builder(TokioExecutor::new()).http2_only(true).build_http::<Full<Bytes>>();
            let mut request = http::Request::builder().method("POST").uri(uri).header("te", "trailers");
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                request = request.header("content-type", "application/grpc");
            }
            for (k, v) in headers {
                request = request.header(*k, *v);
            }
            let response = client.request(request.body(Full::new(body)).expect("request")).await.expect("exchange");
            let http_status = response.status().as_u16();
            let headers = response.headers().clone();
            let collected = response.into_body().collect().await.expect("body");
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let status = trailers.get("grpc-status").or_else(|| headers.get("grpc-status"));
            let code = status.and_then(|s| s.to_str().ok()).and_then(|s| s.parse::<i32>().ok()).map(Code::from_i32);
            let message = trailers
                .get("grpc-message")
                .or_else(|| headers.get("grpc-message"))
                .map(|m| percent_decode(m.as_bytes()))
                .unwrap_or_default();
            RawAnswer { http_status, code, message, body: collected.to_bytes() }
        })
    }
}

/// One gRPC exchange over TLS (ALPN `h2`) to `127.0.0.1:port` with `config`: `Err` when the
/// handshake or the exchange fails.
pub fn raw_tls(
    port: u16,
    config: std::sync::Arc<rustls::ClientConfig>,
    path: &str,
    body: Bytes,
    headers: &[(&str, &str)],
) -> Result<RawAnswer, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| format!("connect: {e}"))?;
            let name = rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST).into());
            let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| format!("handshake: {e}"))?;
            let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(connection);
            let mut request = http::Request::builder()
                .method("POST")
                .uri(format!("https://127.0.0.1:{port}{path}"))
                .version(http::Version::HTTP_2)
                .header("content-type", "application/grpc")
                .header("te", "trailers");
            for (k, v) in headers {
                request = request.header(*k, *v);
            }
            let response = sender.send_request(request.body(Full::new(body)).expect("request")).await.map_err(|e| format!("request: {e}"))?;
            let http_status = response.status().as_u16();
            let headers = response.headers().clone();
            let collected = response.into_body().collect().await.map_err(|e| format!("body: {e}"))?;
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let status = trailers.get("grpc-status").or_else(|| headers.get("grpc-status"));
            let code = status.and_then(|s| s.to_str().ok()).and_then(|s| s.parse::<i32>().ok()).map(Code::from_i32);
            let message = trailers.get("grpc-message").or_else(|| headers.get("grpc-message")).map(|m| percent_decode(m.as_bytes())).unwrap_or_default();
            Ok(RawAnswer { http_status, code, message, body: collected.to_bytes() })
        };
        tokio::time::timeout(Duration::from_secs(30), exchange).await.unwrap_or_else(|_| Err("no answer within 30s".into()))
    })
}

/// A message framed for a gRPC body.
pub fn frame(message: &[u8]) -> Bytes {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).expect("size").to_be_bytes());
    framed.extend_from_slice(message);
    Bytes::from(framed)
}

fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
