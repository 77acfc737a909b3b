//! The servers' codec: prost's, except that a request that does not decode (a string that is not
//! UTF-8, a field of the wrong wire type) is the caller's mistake, INVALID_ARGUMENT, where prost's
//! codec says INTERNAL; and a request whose string maps are too large is refused here, before
//! any handler sees it (`limits`).

use super::limits::{self, MapFields};
use crate::engine::clip;
use prost::Message;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// Encodes replies as prost does and decodes requests with [`RequestDecoder`].
#[derive(Debug, Clone, Default)]
pub struct RequestCodec<T, U> {
    prost: ProstCodec<T, U>,
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + MapFields + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> ProstEncoder<T> {
        self.prost.encoder()
    }

    fn decoder(&mut self) -> RequestDecoder<U> {
        RequestDecoder { _message: PhantomData }
    }
}

/// Decodes one request message and checks its maps; a failure is INVALID_ARGUMENT.
#[derive(Debug, Clone, Default)]
pub struct RequestDecoder<U> {
    _message: PhantomData<U>,
}

impl<U: Message + Default + MapFields> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let request = U::decode(buf)
            .map_err(|e| Status::invalid_argument(format!("the request does not decode: {}", clip(&e.to_string()))))?;
        limits::check(&request)?;
        Ok(Some(request))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
