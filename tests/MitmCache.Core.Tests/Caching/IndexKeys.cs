using MitmCache.Registry;

namespace MitmCache.Core.Tests.Caching;

/// <summary>
/// Index keys for tests: the index stores a digest as its text, so these tests keep short readable keys
/// (<c>sha256:a</c>). The positional constructor skips validation on purpose: such a digest never becomes a path.
/// </summary>
internal static class IndexKeys
{
    public static Digest Key(string digest) => Digest.TryParse(digest, out var parsed)
        ? parsed
        : new Digest(digest[..digest.IndexOf(':')], digest[(digest.IndexOf(':') + 1)..]);
}
