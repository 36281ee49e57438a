using Amazon.Runtime;
using Amazon.S3;

namespace MitmCache.ObjectStore;

/// <summary>
/// The SDK client, set for any S3-compatible engine: path-style addressing, the signing region given,
/// checksums only when an operation requires them (AWSSDK.S3 4.x's default aws-chunked uploads with a
/// checksum trailer get 400 XAmzContentSHA256Mismatch from Ceph RGW 16), no SDK retries (the breaker and
/// the upload queue decide about trying again), no SDK logging, and an HttpClient of our own: no proxy
/// (an <c>HTTPS_PROXY</c> meant for the runtime must not capture the bucket; with MitmCache as a node's
/// proxy it would even loop), no redirects, and the connect timeout of <see cref="BlobStoreSettings.RequestTimeout"/>.
/// Whole-request time limits are ours (<see cref="EngineCalls"/>): a 2 s limit on a 256 MiB body would be wrong.
/// </summary>
internal static class S3ClientFactory
{
    public static AmazonS3Client Create(BlobStoreSettings settings, AWSCredentials credentials)
    {
        var config = new AmazonS3Config
        {
            ServiceURL = settings.Endpoint.ToString(),
            ForcePathStyle = true,
            AuthenticationRegion = settings.Region,
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            MaxErrorRetry = 0,
            DisableLogging = true,
            IgnoreConfiguredEndpointUrls = true, // AWS_ENDPOINT_URL* in the environment must not redirect the bucket
            HttpClientFactory = new DirectHttpClientFactory(settings.RequestTimeout),
        };
        return new AmazonS3Client(credentials, config);
    }

    private sealed class DirectHttpClientFactory(TimeSpan connectTimeout) : HttpClientFactory
    {
        public override HttpClient CreateHttpClient(IClientConfig clientConfig) =>
            new(new SocketsHttpHandler
            {
                UseProxy = false,
                AllowAutoRedirect = false,
                ConnectTimeout = connectTimeout,
                PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            })
            {
                Timeout = Timeout.InfiniteTimeSpan,
            };
    }
}
