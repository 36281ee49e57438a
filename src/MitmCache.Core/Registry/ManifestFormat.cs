using System.Text.Json;

namespace MitmCache.Registry;

/// <summary>
/// Whether an upstream body is the manifest it claims to be, before it is stored as one: a JSON object
/// of the media type its <c>Content-Type</c> names (or, with a generic Content-Type, its own
/// <c>mediaType</c> field; the two must not disagree), with the schema version and the list that type is
/// made of (OCI image-spec manifest.md and image-index.md; Docker manifest v2 schema 2 and schema 1). A body fetched by tag is verified by
/// nothing else, so an error page, a redirect's target or an index posing as a manifest stops here.
/// </summary>
internal static class ManifestFormat
{
    /// <summary>The manifest media type <paramref name="body"/> is, or null with <paramref name="problem"/> saying why it is none.</summary>
    public static string? Check(ReadOnlySpan<byte> body, string? contentType, out string problem)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body.ToArray());
        }
        catch (JsonException)
        {
            problem = $"the body is not JSON (Content-Type {contentType ?? "none"})";
            return null;
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                problem = "the body is not a JSON object";
                return null;
            }

            var own = root.TryGetProperty("mediaType", out var field) && field.ValueKind == JsonValueKind.String ? field.GetString() : null;
            // Only a generic Content-Type (none, JSON, bytes) leaves the claim to the body's own mediaType.
            var generic = contentType is null || Essence(contentType) is "application/json" or "application/octet-stream";
            var claimed = MediaTypes.IsManifest(contentType) ? Essence(contentType!)
                : generic && MediaTypes.IsManifest(own) ? own!
                : null;
            if (claimed is null)
            {
                problem = $"neither its Content-Type ({contentType ?? "none"}) nor its mediaType ({own ?? "none"}) is a manifest type";
                return null;
            }

            if (own is not null && !own.Equals(claimed, StringComparison.OrdinalIgnoreCase))
            {
                problem = $"it is served as {claimed} but says it is {own}";
                return null;
            }

            var version = root.TryGetProperty("schemaVersion", out var number) && number.ValueKind == JsonValueKind.Number && number.TryGetInt32(out var v) ? v : 0;
            var (wantedVersion, list) = claimed.ToLowerInvariant() switch
            {
                MediaTypes.OciIndex or MediaTypes.DockerManifestList => (2, "manifests"),
                MediaTypes.DockerManifestV1 or MediaTypes.DockerManifestV1Signed => (1, "fsLayers"),
                _ => (2, "layers"),
            };
            if (version != wantedVersion)
            {
                problem = $"{claimed} needs schemaVersion {wantedVersion}";
                return null;
            }

            if (!root.TryGetProperty(list, out var entries) || entries.ValueKind != JsonValueKind.Array)
            {
                problem = $"{claimed} needs a \"{list}\" array";
                return null;
            }

            if (root.TryGetProperty("config", out var config) && config.ValueKind != JsonValueKind.Object)
            {
                problem = "its \"config\" is not an object";
                return null;
            }

            problem = "";
            return claimed;
        }
    }

    private static string Essence(string mediaType)
    {
        var semicolon = mediaType.IndexOf(';', StringComparison.Ordinal);
        return (semicolon < 0 ? mediaType : mediaType[..semicolon]).Trim().ToLowerInvariant();
    }
}
