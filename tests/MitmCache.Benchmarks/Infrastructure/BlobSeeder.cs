using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using MitmCache.Tests.Common;
using BenchMediaTypes = MitmCache.Tests.Common.MediaTypes;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>A blob placed in the upstream registry: its digest, size and the registry's own file.</summary>
internal sealed record SeededBlob(string Digest, long Size, string StoragePath)
{
    public string Hex => Digests.Hex(Digest);
}

/// <summary>
/// Puts large blobs into the upstream registry without holding them in memory: the bytes are written
/// straight into distribution's filesystem layout (<c>blobs/sha256/XX/HEX/data</c> plus the repository's
/// <c>_layers</c> link), then a manifest naming them is PUT over the API, which makes distribution check
/// that every blob is there. Small images still go through <see cref="RegistryPusher"/>.
/// </summary>
internal static class BlobSeeder
{
    private const int Chunk = 1 << 20;

    /// <summary>Writes <paramref name="size"/> deterministic pseudo-random bytes (xorshift, seeded) as a blob of <paramref name="repository"/>.</summary>
    public static SeededBlob WriteBlob(RegistryServer registry, string repository, long size, ulong seed)
    {
        var v2 = Path.Combine(registry.StorageRoot, "docker", "registry", "v2");
        Directory.CreateDirectory(v2);
        var temp = Path.Combine(v2, $"seed-{Guid.NewGuid():N}");
        var buffer = new byte[Chunk];
        var state = seed | 1;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0))
        {
            for (long written = 0; written < size;)
            {
                var n = (int)Math.Min(Chunk, size - written);
                for (var i = 0; i + 8 <= n; i += 8)
                {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(i), state);
                }

                file.Write(buffer, 0, n);
                hash.AppendData(buffer, 0, n);
                written += n;
            }
        }

        var hex = Convert.ToHexStringLower(hash.GetHashAndReset());
        return Place(registry, repository, hex, size, temp);
    }

    public static SeededBlob WriteBlob(RegistryServer registry, string repository, byte[] bytes)
    {
        var v2 = Path.Combine(registry.StorageRoot, "docker", "registry", "v2");
        Directory.CreateDirectory(v2);
        var temp = Path.Combine(v2, $"seed-{Guid.NewGuid():N}");
        File.WriteAllBytes(temp, bytes);
        return Place(registry, repository, Convert.ToHexStringLower(SHA256.HashData(bytes)), bytes.Length, temp);
    }

    /// <summary>PUTs an OCI manifest (with a small config of its own) naming <paramref name="layers"/> under <paramref name="tag"/>.</summary>
    public static async Task<string> PutManifestAsync(RegistryServer registry, string repository, string tag, IReadOnlyList<SeededBlob> layers)
    {
        var configBytes = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["architecture"] = "amd64",
            ["os"] = "linux",
            ["rootfs"] = new JsonObject { ["type"] = "layers", ["diff_ids"] = new JsonArray(layers.Select(l => (JsonNode)l.Digest).ToArray()) },
        }.ToJsonString());
        var config = WriteBlob(registry, repository, configBytes);
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = BenchMediaTypes.OciManifest,
            ["config"] = Descriptor(BenchMediaTypes.OciConfig, config),
            ["layers"] = new JsonArray(layers.Select(l => (JsonNode)Descriptor(BenchMediaTypes.OciLayerGzip, l)).ToArray()),
        };
        var bytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        using var http = registry.CreateClient();
        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue(BenchMediaTypes.OciManifest);
        using var response = await http.PutAsync(new Uri(registry.BaseUri, $"/v2/{repository}/manifests/{tag}"), content);
        if (response.StatusCode != HttpStatusCode.Created)
        {
            throw new InvalidOperationException($"manifest PUT gave {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));
    }

    private static JsonObject Descriptor(string mediaType, SeededBlob blob) =>
        new() { ["mediaType"] = mediaType, ["digest"] = blob.Digest, ["size"] = blob.Size };

    private static SeededBlob Place(RegistryServer registry, string repository, string hex, long size, string temp)
    {
        var v2 = Path.Combine(registry.StorageRoot, "docker", "registry", "v2");
        var blobDir = Path.Combine(v2, "blobs", "sha256", hex[..2], hex);
        Directory.CreateDirectory(blobDir);
        var data = Path.Combine(blobDir, "data");
        if (File.Exists(data))
        {
            File.Delete(temp);
        }
        else
        {
            File.Move(temp, data);
        }

        var link = Path.Combine(v2, "repositories", repository, "_layers", "sha256", hex);
        Directory.CreateDirectory(link);
        File.WriteAllText(Path.Combine(link, "link"), "sha256:" + hex);
        return new SeededBlob("sha256:" + hex, size, data);
    }
}
