//! A network license server with the semantics of the MxNet2 remote API.
