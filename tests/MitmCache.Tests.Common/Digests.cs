using System.Security.Cryptography;

namespace MitmCache.Tests.Common;

/// <summary>Content digests in the registry's "sha256:HEX" form.</summary>
public static class Digests
{
    public static string Sha256(ReadOnlySpan<byte> content) =>
        "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));

    /// <summary>The lowercase hex part of a "sha256:HEX" digest.</summary>
    public static string Hex(string digest) =>
        digest.StartsWith("sha256:", StringComparison.Ordinal) ? digest["sha256:".Length..] : throw new ArgumentException($"Not a sha256 digest: {digest}", nameof(digest));
}
