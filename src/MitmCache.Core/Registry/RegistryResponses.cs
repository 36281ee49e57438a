using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Win32.SafeHandles;
using MitmCache.Caching;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>How registry answers are written: cache results, relayed upstream answers, blob bodies.</summary>
internal static class RegistryResponses
{
    public const string ResultHeader = "X-MitmCache";

    public static void SetResult(HttpResponse response, string result)
    {
        response.Headers[ResultHeader] = result;
        response.Headers[RegistryError.ApiVersionHeader] = RegistryError.ApiVersion;
    }

    /// <summary>Streams an upstream answer to the client unchanged. Returns the body bytes sent.</summary>
    public static async Task<long> RelayAsync(HttpContext context, HttpResponseMessage upstream, string result)
    {
        HeaderRules.CopyResponseHead(upstream, context.Response);
        context.Response.Headers[ResultHeader] = result;
        await using var body = await upstream.Content.ReadAsStreamAsync(context.RequestAborted);
        var copy = await StreamCopier.CopyAsync(body, context.Response.Body, context.RequestAborted);
        if (copy.Failure == CopyFailure.Read)
        {
            context.Abort();
        }

        return copy.Bytes;
    }

    /// <summary>
    /// Passes on a refusal learned from a HEAD probe: its status and challenge, with a registry error
    /// body of our own (the probe had none, and its Content-Length would be wrong).
    /// </summary>
    public static Task RefuseAsync(HttpContext context, HttpResponseMessage probe, string notFoundCode)
    {
        var response = context.Response;
        foreach (var header in new[] { "WWW-Authenticate", "Docker-Distribution-API-Version" })
        {
            if (probe.Headers.TryGetValues(header, out var values))
            {
                response.Headers[header] = values.ToArray();
            }
        }

        SetResult(response, "refused");
        var (code, message) = probe.StatusCode switch
        {
            HttpStatusCode.Unauthorized => (RegistryErrorCode.Unauthorized, "authentication required"),
            HttpStatusCode.Forbidden => (RegistryErrorCode.Denied, "requested access to the resource is denied"),
            _ => (notFoundCode, "unknown to registry"),
        };
        return RegistryError.WriteAsync(response, code, message, context.RequestAborted);
    }

    /// <summary>
    /// Writes a stored blob or manifest, or the growing file of a fill, honouring a single Range.
    /// Breaks the connection if the fill behind it fails, so the client never sees a clean end.
    /// </summary>
    public static async Task<long> ServeFileAsync(HttpContext context, SafeFileHandle file, long? size, string mediaType, string digest, BlobFill? fill)
    {
        var response = context.Response;
        response.ContentType = mediaType;
        response.Headers["Docker-Content-Digest"] = digest;
        response.Headers.ETag = $"\"{digest}\"";
        long start = 0, length;
        if (size is { } total)
        {
            response.Headers.AcceptRanges = "bytes";
            var range = ByteRange.Resolve(context.Request.Headers.Range, total);
            if (range.Kind == RangeKind.Unsatisfiable)
            {
                response.StatusCode = StatusCodes.Status416RangeNotSatisfiable;
                response.Headers.ContentRange = $"bytes */{total}";
                return 0;
            }

            if (range.Kind == RangeKind.Partial)
            {
                response.StatusCode = StatusCodes.Status206PartialContent;
                response.Headers.ContentRange = string.Create(CultureInfo.InvariantCulture, $"bytes {range.Start}-{range.Start + range.Length - 1}/{total}");
            }

            (start, length) = (range.Start, range.Length);
            response.ContentLength = length;
        }
        else
        {
            length = long.MaxValue; // unknown size: stream until the fill ends (chunked)
        }

        if (HttpMethods.IsHead(context.Request.Method))
        {
            return 0;
        }

        var (outcome, sent) = await BlobReader.CopyAsync(file, start, length, response.BodyWriter, fill, context.RequestAborted);
        if (outcome == ReadOutcome.SourceFailed)
        {
            context.Abort();
        }

        return sent;
    }
}
