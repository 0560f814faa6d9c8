//! The yardstick of `bench/cold-start.sh`: a hello world of `lambda_runtime` that answers an API
//! Gateway event with a constant 200, built with the same profile and dependencies as the
//! functions, so that the benchmark can tell the runtime's own start from ours (configuration,
//! AWS clients).

use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::lambda_runtime::{self, service_fn, Error, LambdaEvent};
use lambda_http::{tracing, Body};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(hello)).await
}

async fn hello(
    _event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = 200;
    response.body = Some(Body::Text("hello".to_owned()));
    Ok(response)
}
