using System.Buffers;

namespace MitmCache.Upstream;

/// <summary>
/// Reads a body the proxy must hold whole (a manifest, a token response) with a cap, whether or not a
/// length is announced: an announced length over the cap is refused before any byte is read, and a
/// chunked, endless or lying body is read only until it passes the cap. Disposing the response then
/// drops the connection, so the rest is never read.
/// </summary>
internal static class BoundedContent
{
    public const int MaxManifestBytes = 4 << 20; // distribution's limit for manifests it accepts
    public const int MaxTokenBytes = 1 << 20;

    /// <summary>The whole body, or null when it is longer than <paramref name="limit"/> bytes.</summary>
    public static async Task<byte[]?> ReadAsync(HttpContent content, int limit, CancellationToken cancellationToken)
    {
        if (content.Headers.ContentLength > limit)
        {
            return null;
        }

        var buffer = new ArrayBufferWriter<byte>((int)Math.Min(content.Headers.ContentLength ?? 16 * 1024, limit) + 1);
        await using var body = await content.ReadAsStreamAsync(cancellationToken);
        while (true)
        {
            var read = await body.ReadAsync(buffer.GetMemory(16 * 1024), cancellationToken);
            if (read == 0)
            {
                return buffer.WrittenSpan.ToArray();
            }

            buffer.Advance(read);
            if (buffer.WrittenCount > limit)
            {
                return null;
            }
        }
    }

    /// <summary>"4 MiB", for messages.</summary>
    public static string Describe(int limit) => limit >= 1 << 20 ? $"{limit >> 20} MiB" : $"{limit >> 10} KiB";
}
