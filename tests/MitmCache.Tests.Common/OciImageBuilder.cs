using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;

namespace MitmCache.Tests.Common;

/// <summary>
/// Builds small deterministic images: the same layers and platform always give the same digests.
/// Each layer is a tar holding one file of seeded random bytes (incompressible, so blob size
/// is about the requested size), gzipped with fixed header fields.
/// </summary>
public sealed class OciImageBuilder
{
    private static readonly DateTimeOffset FixedTime = new(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly List<(byte[] Gzip, string DiffId)> _layers = [];

    public OciImageBuilder AddLayer(int sizeBytes, int seed)
    {
        var content = new byte[sizeBytes];
        new Random(seed).NextBytes(content);

        using var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Ustar, leaveOpen: true))
        {
            writer.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, $"layer-{seed}.bin")
            {
                DataStream = new MemoryStream(content),
                ModificationTime = FixedTime,
                Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
                Uid = 0,
                Gid = 0,
                UserName = "root",
                GroupName = "root",
            });
        }

        var uncompressed = tar.ToArray();
        using var gzip = new MemoryStream();
        using (var compressor = new GZipStream(gzip, CompressionLevel.Fastest, leaveOpen: true))
        {
            compressor.Write(uncompressed);
        }

        _layers.Add((gzip.ToArray(), Digests.Sha256(uncompressed)));
        return this;
    }

    public BuiltImage Build(string os = "linux", string arch = "amd64", bool dockerMediaTypes = false)
    {
        var config = new JsonObject
        {
            ["architecture"] = arch,
            ["os"] = os,
            ["config"] = new JsonObject { ["Cmd"] = new JsonArray("/bin/true") },
            ["rootfs"] = new JsonObject
            {
                ["type"] = "layers",
                ["diff_ids"] = new JsonArray(_layers.Select(l => (JsonNode)l.DiffId).ToArray()),
            },
        };
        var configBytes = Encoding.UTF8.GetBytes(config.ToJsonString());
        var configDigest = Digests.Sha256(configBytes);
        var layers = _layers.Select(l => (Digests.Sha256(l.Gzip), l.Gzip)).ToArray();

        var mediaType = dockerMediaTypes ? MediaTypes.DockerManifest : MediaTypes.OciManifest;
        var layerType = dockerMediaTypes ? MediaTypes.DockerLayerGzip : MediaTypes.OciLayerGzip;
        var manifest = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = mediaType,
            ["config"] = Descriptor(dockerMediaTypes ? MediaTypes.DockerConfig : MediaTypes.OciConfig, configDigest, configBytes.Length),
            ["layers"] = new JsonArray(layers.Select(l => (JsonNode)Descriptor(layerType, l.Item1, l.Gzip.Length)).ToArray()),
        };
        var manifestBytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());

        return new BuiltImage
        {
            ConfigJson = configBytes,
            ConfigDigest = configDigest,
            Layers = layers,
            Manifest = manifestBytes,
            ManifestDigest = Digests.Sha256(manifestBytes),
            MediaType = mediaType,
            Os = os,
            Architecture = arch,
        };
    }

    /// <summary>An index over the images: a Docker manifest list when they use Docker media types, else an OCI index.</summary>
    public static BuiltIndex Index(params BuiltImage[] platforms)
    {
        if (platforms.Length == 0)
        {
            throw new ArgumentException("An index needs at least one image.", nameof(platforms));
        }

        var docker = platforms[0].MediaType == MediaTypes.DockerManifest;
        var mediaType = docker ? MediaTypes.DockerManifestList : MediaTypes.OciIndex;
        var entries = platforms.Select(p =>
        {
            var entry = Descriptor(p.MediaType, p.ManifestDigest, p.Manifest.Length);
            entry["platform"] = new JsonObject { ["architecture"] = p.Architecture, ["os"] = p.Os };
            return (JsonNode)entry;
        });
        var index = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = mediaType,
            ["manifests"] = new JsonArray(entries.ToArray()),
        };
        var bytes = Encoding.UTF8.GetBytes(index.ToJsonString());
        return new BuiltIndex { Bytes = bytes, Digest = Digests.Sha256(bytes), MediaType = mediaType, Platforms = platforms };
    }

    private static JsonObject Descriptor(string mediaType, string digest, long size) =>
        new() { ["mediaType"] = mediaType, ["digest"] = digest, ["size"] = size };
}
