using System.Text.Json;

namespace MitmCache.Caching;

/// <summary>A stored file's media type when nothing recorded it (a file adopted at start-up): a manifest names its own.</summary>
internal static class ManifestSniffer
{
    /// <summary>Files at least this large are not read whole to look for a manifest's media type.</summary>
    public const int MaxBytes = 4 * 1024 * 1024;

    /// <summary>The <c>mediaType</c> of a JSON document that names one; null for anything else.</summary>
    public static string? MediaTypeOf(byte[] bytes)
    {
        if (bytes.Length == 0 || bytes[0] != (byte)'{')
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(bytes);
            return document.RootElement.TryGetProperty("mediaType", out var type) && type.ValueKind == JsonValueKind.String
                ? type.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
