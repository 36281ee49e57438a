using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace MitmCache.Registry;

/// <summary>
/// Writes spec error bodies: <c>{"errors":[{"code":"...","message":"...","detail":...}]}</c>.
/// </summary>
internal static class RegistryError
{
    public const string ContentType = "application/json; charset=utf-8";
    public const string ApiVersionHeader = "Docker-Distribution-API-Version";
    public const string ApiVersion = "registry/2.0";

    /// <summary>
    /// HTTP status for a spec error code, as distribution/distribution registers them
    /// (registry/api/errcode/register.go, registry/api/v2/errors.go). Unknown codes map to 500.
    /// </summary>
    public static int StatusCodeFor(string code)
    {
        return code switch
        {
            RegistryErrorCode.BlobUnknown => StatusCodes.Status404NotFound,
            RegistryErrorCode.BlobUploadUnknown => StatusCodes.Status404NotFound,
            RegistryErrorCode.ManifestUnknown => StatusCodes.Status404NotFound,
            RegistryErrorCode.NameUnknown => StatusCodes.Status404NotFound,
            RegistryErrorCode.BlobUploadInvalid => StatusCodes.Status400BadRequest,
            RegistryErrorCode.DigestInvalid => StatusCodes.Status400BadRequest,
            RegistryErrorCode.ManifestBlobUnknown => StatusCodes.Status400BadRequest,
            RegistryErrorCode.ManifestInvalid => StatusCodes.Status400BadRequest,
            RegistryErrorCode.ManifestUnverified => StatusCodes.Status400BadRequest,
            RegistryErrorCode.NameInvalid => StatusCodes.Status400BadRequest,
            RegistryErrorCode.SizeInvalid => StatusCodes.Status400BadRequest,
            RegistryErrorCode.TagInvalid => StatusCodes.Status400BadRequest,
            RegistryErrorCode.Unauthorized => StatusCodes.Status401Unauthorized,
            RegistryErrorCode.Denied => StatusCodes.Status403Forbidden,
            RegistryErrorCode.Unsupported => StatusCodes.Status405MethodNotAllowed,
            RegistryErrorCode.TooManyRequests => StatusCodes.Status429TooManyRequests,
            RegistryErrorCode.Unavailable => StatusCodes.Status503ServiceUnavailable,
            _ => StatusCodes.Status500InternalServerError,
        };
    }

    /// <summary>UTF-8 JSON error body. <paramref name="detail"/> is written as a JSON string, or omitted when null.</summary>
    public static byte[] CreateBody(string code, string message, string? detail = null)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteStartArray("errors");
            writer.WriteStartObject();
            writer.WriteString("code", code);
            writer.WriteString("message", message);
            if (detail is not null)
            {
                writer.WriteString("detail", detail);
            }

            writer.WriteEndObject();
            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Sets status and headers and writes the error body (no body for HEAD). The response must not have started.</summary>
    public static Task WriteAsync(HttpResponse response, string code, string message, CancellationToken ct)
    {
        return WriteAsync(response, code, message, detail: null, ct);
    }

    /// <inheritdoc cref="WriteAsync(HttpResponse, string, string, CancellationToken)"/>
    public static Task WriteAsync(HttpResponse response, string code, string message, string? detail, CancellationToken ct) =>
        WriteAsync(response, StatusCodeFor(code), code, message, detail, ct);

    /// <summary>
    /// As <see cref="WriteAsync(HttpResponse, string, string, CancellationToken)"/> with a status of its own: for an
    /// upstream's fault (502) described with the code of what was wrong with its answer.
    /// </summary>
    public static Task WriteAsync(HttpResponse response, int status, string code, string message, CancellationToken ct) =>
        WriteAsync(response, status, code, message, detail: null, ct);

    private static Task WriteAsync(HttpResponse response, int status, string code, string message, string? detail, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(response);

        var body = CreateBody(code, message, detail);
        response.StatusCode = status;
        response.ContentType = ContentType;
        response.ContentLength = body.Length;
        response.Headers[ApiVersionHeader] = ApiVersion;

        if (HttpMethods.IsHead(response.HttpContext.Request.Method))
        {
            return Task.CompletedTask;
        }

        return response.Body.WriteAsync(body, ct).AsTask();
    }
}
