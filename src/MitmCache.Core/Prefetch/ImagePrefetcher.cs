using System.Net;
using System.Runtime.ExceptionServices;
using System.Text.Json;
using MitmCache.Registry;
using MitmCache.Upstream;

namespace MitmCache.Prefetch;

/// <summary>
/// Pulls an image through the proxy so that the proxy caches it: the manifest (for an index, the manifests
/// of the selected platforms), then every config and layer, <paramref name="parallelism"/> at a time. Bodies
/// are hashed and discarded: the cache is the proxy's, this only makes it fetch. A blob that does not hash
/// to its digest fails the image.
/// </summary>
internal sealed class ImagePrefetcher(RegistryClient client, PlatformFilter platforms, int parallelism, IPrefetchProgress progress)
{
    private const int MaxIndexDepth = 2;
    private static readonly TimeSpan s_stallTimeout = TimeSpan.FromSeconds(60);

    private static readonly string s_accept = string.Join(", ",
        MediaTypes.OciIndex, MediaTypes.DockerManifestList, MediaTypes.OciManifest, MediaTypes.DockerManifest);

    public async Task<PrefetchResult> PrefetchAsync(ImageReference image, CancellationToken cancellationToken)
    {
        progress.ImageStarted(image);
        PrefetchResult result;
        try
        {
            var root = await FetchManifestAsync(image, image.Reference, cancellationToken);
            if (!client.IsIntercepted(image.Registry))
            {
                throw new PrefetchException($"{image.Registry} is not intercepted by the proxy (its certificate is not from the proxy's CA), " +
                    "so nothing would be cached: add it to the proxy with --intercept");
            }

            var manifests = new List<Manifest>();
            await ExpandAsync(image, root, manifests, 0, cancellationToken);
            var blobs = manifests.SelectMany(m => BlobsOf(image, m)).DistinctBy(b => b.Digest).ToList();
            long bytes = 0;
            await Parallel.ForEachAsync(blobs, new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = cancellationToken },
                async (blob, token) => Interlocked.Add(ref bytes, await FetchBlobAsync(image, blob, token)));
            result = new PrefetchResult(image, root.Digest, manifests.Count, blobs.Count, bytes + manifests.Sum(m => m.Bytes.Length), null);
        }
        catch (PrefetchException ex)
        {
            result = new PrefetchResult(image, null, 0, 0, 0, ex.Message);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            result = new PrefetchResult(image, null, 0, 0, 0, $"{image.Registry}: {ex.Message}");
        }

        progress.ImageCompleted(result);
        return result;
    }

    /// <summary>Adds an image manifest, or the selected manifests of an index (nested indexes too, up to a depth).</summary>
    private async Task ExpandAsync(ImageReference image, Manifest manifest, List<Manifest> manifests, int depth, CancellationToken cancellationToken)
    {
        if (!MediaTypes.IsIndex(manifest.MediaType))
        {
            manifests.Add(manifest);
            return;
        }

        if (depth >= MaxIndexDepth)
        {
            throw new PrefetchException($"index {manifest.Digest} nests indexes deeper than {MaxIndexDepth}");
        }

        manifests.Add(manifest);
        using var document = Parse(manifest);
        var entries = document.RootElement.TryGetProperty("manifests", out var list) && list.ValueKind == JsonValueKind.Array ? list.EnumerateArray().ToList() : [];
        var selected = entries.Where(platforms.Matches).ToList();
        if (selected.Count == 0)
        {
            var available = string.Join(", ", entries.Select(PlatformFilter.Describe).Distinct(StringComparer.Ordinal));
            throw new PrefetchException($"no manifest for {platforms} in the index (it has: {(available.Length == 0 ? "nothing" : available)}); try --platform all");
        }

        foreach (var entry in selected)
        {
            var digest = DigestOf(entry) ?? throw new PrefetchException($"index {manifest.Digest} lists an entry without a valid digest");
            await ExpandAsync(image, await FetchManifestAsync(image, digest.ToString(), cancellationToken), manifests, depth + 1, cancellationToken);
        }
    }

    private async Task<Manifest> FetchManifestAsync(ImageReference image, string reference, CancellationToken cancellationToken)
    {
        using var response = await client.SendAsync(image, $"/v2/{image.Repository}/manifests/{reference}", s_accept, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new PrefetchException(response.StatusCode == HttpStatusCode.NotFound
                ? $"manifest {reference} not found in {image.Registry}/{image.Repository}"
                : $"manifest {reference}: {image.Registry} answered {(int)response.StatusCode} {response.ReasonPhrase}{await ErrorTextAsync(response, cancellationToken)}");
        }

        var bytes = await BoundedContent.ReadAsync(response.Content, BoundedContent.MaxManifestBytes, cancellationToken)
            ?? throw new PrefetchException($"manifest {reference} is larger than {BoundedContent.Describe(BoundedContent.MaxManifestBytes)}");
        var digest = Digest.Compute(bytes);
        var announced = response.Headers.TryGetValues("Docker-Content-Digest", out var values) ? values.FirstOrDefault() : null;
        var expected = Digest.TryParse(reference, out var byDigest) ? byDigest : Digest.TryParse(announced, out var parsed) ? parsed : (Digest?)null;
        if (expected is { } wanted && wanted.Algorithm != digest.Algorithm)
        {
            digest = Digest.Compute(bytes, wanted.Algorithm);
        }

        if (expected is { } check && check != digest)
        {
            throw new PrefetchException($"manifest {reference} hashes to {digest}, not {check}");
        }

        var manifest = new Manifest(digest, response.Content.Headers.ContentType?.MediaType ?? "", bytes);
        using (var document = Parse(manifest))
        {
            if (document.RootElement.TryGetProperty("mediaType", out var type) && type.ValueKind == JsonValueKind.String && !MediaTypes.IsManifest(manifest.MediaType))
            {
                manifest = manifest with { MediaType = type.GetString() ?? "" };
            }

            if (document.RootElement.TryGetProperty("schemaVersion", out var version) && version.ValueKind == JsonValueKind.Number && version.GetInt32() == 1)
            {
                throw new PrefetchException($"manifest {reference} is Docker schema 1, which is not supported");
            }
        }

        progress.ManifestFetched(image, manifest.Digest, manifest.MediaType, bytes.Length, ResultOf(response));
        return manifest;
    }

    private async Task<long> FetchBlobAsync(ImageReference image, BlobDescriptor blob, CancellationToken cancellationToken)
    {
        progress.BlobStarted(blob.Digest, blob.Kind, blob.Size);
        using var response = await client.SendAsync(image, $"/v2/{image.Repository}/blobs/{blob.Digest}", accept: null, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new PrefetchException($"{blob.Kind} {blob.Digest}: {image.Registry} answered {(int)response.StatusCode} {response.ReasonPhrase}{await ErrorTextAsync(response, cancellationToken)}");
        }

        var digest = blob.Digest;
        using var hash = digest.CreateHash();
        long received = 0;
        CopyResult copy;
        await using (var body = await response.Content.ReadAsStreamAsync(cancellationToken))
        {
            copy = await StreamCopier.CopyAsync(body, new HashingSink(hash), cancellationToken,
                bytes => progress.BlobProgress(blob.Digest, received += bytes), s_stallTimeout);
        }

        var total = copy.Bytes;
        switch (copy.Failure)
        {
            case CopyFailure.Canceled:
                ExceptionDispatchInfo.Throw(copy.Error!);
                break;
            case CopyFailure.Read when copy.Error is TimeoutException:
                throw new PrefetchException($"{blob.Kind} {blob.Digest}: nothing received for {s_stallTimeout.TotalSeconds:0} s after {total} bytes");
            case CopyFailure.Read:
                throw new PrefetchException($"{blob.Kind} {blob.Digest}: the download broke after {total} bytes: {copy.Error!.Message}");
        }

        if ((blob.Size >= 0 && total != blob.Size) || !digest.Matches(hash.GetHashAndReset()))
        {
            throw new PrefetchException($"{blob.Kind} {blob.Digest}: received {total} bytes that do not match the digest (expected {blob.Size} bytes)");
        }

        progress.BlobCompleted(blob.Digest, total, ResultOf(response));
        return total;
    }

    /// <summary>The config and layers of an image manifest; foreign (non-distributable) layers are skipped.</summary>
    private static IEnumerable<BlobDescriptor> BlobsOf(ImageReference image, Manifest manifest)
    {
        if (MediaTypes.IsIndex(manifest.MediaType))
        {
            return [];
        }

        using var document = Parse(manifest);
        var blobs = new List<BlobDescriptor>();
        var root = document.RootElement;
        if (root.TryGetProperty("config", out var config) && config.ValueKind == JsonValueKind.Object)
        {
            blobs.Add(Descriptor(manifest, config, "config"));
        }

        if (root.TryGetProperty("layers", out var layers) && layers.ValueKind == JsonValueKind.Array)
        {
            foreach (var layer in layers.EnumerateArray())
            {
                var type = layer.TryGetProperty("mediaType", out var mediaType) ? mediaType.GetString() ?? "" : "";
                if (!type.Contains("foreign", StringComparison.Ordinal) && !type.Contains("nondistributable", StringComparison.Ordinal))
                {
                    blobs.Add(Descriptor(manifest, layer, "layer"));
                }
            }
        }

        return blobs;
    }

    private static BlobDescriptor Descriptor(Manifest manifest, JsonElement element, string kind) =>
        new(DigestOf(element) ?? throw new PrefetchException($"manifest {manifest.Digest} has a {kind} without a valid digest"),
            element.TryGetProperty("size", out var size) && size.TryGetInt64(out var bytes) ? bytes : -1,
            kind);

    private static Digest? DigestOf(JsonElement descriptor) =>
        descriptor.ValueKind == JsonValueKind.Object && descriptor.TryGetProperty("digest", out var value) && value.ValueKind == JsonValueKind.String
            && Digest.TryParse(value.GetString(), out var digest)
            ? digest
            : null;

    private static JsonDocument Parse(Manifest manifest)
    {
        try
        {
            return JsonDocument.Parse(manifest.Bytes);
        }
        catch (JsonException)
        {
            throw new PrefetchException($"manifest {manifest.Digest} is not JSON");
        }
    }

    private static string? ResultOf(HttpResponseMessage response) =>
        response.Headers.TryGetValues("X-MitmCache", out var values) ? values.FirstOrDefault() : null;

    /// <summary>The start of a registry error body, for messages (": NAME_UNKNOWN ...").</summary>
    private static async Task<string> ErrorTextAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var bytes = await BoundedContent.ReadAsync(response.Content, 64 * 1024, cancellationToken);
            var text = bytes is null ? "" : System.Text.Encoding.UTF8.GetString(bytes).ReplaceLineEndings(" ").Trim();
            return text.Length == 0 ? "" : ": " + (text.Length > 200 ? text[..200] + "..." : text);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            return "";
        }
    }

    private sealed record Manifest(Digest Digest, string MediaType, byte[] Bytes);

    private sealed record BlobDescriptor(Digest Digest, long Size, string Kind);
}
