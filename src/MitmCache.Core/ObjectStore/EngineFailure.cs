using System.Net;
using System.Net.Sockets;
using Amazon.Runtime;

namespace MitmCache.ObjectStore;

/// <summary>
/// Why a call to the engine failed, as a metric label (<see cref="Reason"/>) and a line for logs and
/// <c>/readyz</c> (<see cref="Detail"/>: status, S3 error code or socket error, never a message body or a key).
/// <see cref="IsEngine"/> failures open the breaker; a request the engine refused for its own sake does not.
/// </summary>
internal sealed record EngineFailure(string Reason, string Detail, bool IsEngine)
{
    /// <summary>Null for what is not an engine failure (a programming error goes up).</summary>
    public static EngineFailure? Classify(Exception ex, Deadline deadline, string bucket)
    {
        if (deadline.Expired)
        {
            // Whatever shape the cancellation took on its way out of the SDK (a cancelled task, a wrapped one).
            return new("timeout", $"no answer within {deadline.Limit.TotalSeconds:0.###} s", true);
        }

        if (ex is AmazonServiceException { StatusCode: var status and not 0 } service)
        {
            var code = (int)status;
            return code switch
            {
                404 when service.ErrorCode == "NoSuchBucket" => new("no_such_bucket", $"bucket {bucket} does not exist", true),
                401 or 403 => new("access_denied", $"{code} {service.ErrorCode}: the keys are wrong or lack permission on {bucket}", true),
                >= 500 => new("server_error", $"{code} {service.ErrorCode}", true),
                _ => new("rejected", $"{code} {service.ErrorCode}", false),
            };
        }

        for (var inner = ex; inner is not null; inner = inner.InnerException)
        {
            if (inner is SocketException or HttpRequestException or IOException)
            {
                return new("unreachable", inner.Message, true);
            }
        }

        return ex is AmazonClientException ? new("client_error", ex.GetType().Name, true) : null;
    }

    /// <summary>The engine answered that the object does not exist (404, but not for a missing bucket).</summary>
    public static bool IsNotFound(Exception ex) =>
        ex is AmazonServiceException { StatusCode: HttpStatusCode.NotFound } service && service.ErrorCode != "NoSuchBucket";
}
