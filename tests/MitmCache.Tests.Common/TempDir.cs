namespace MitmCache.Tests.Common;

/// <summary>A fresh directory under the system temp folder, deleted recursively on dispose.</summary>
public sealed class TempDir : IDisposable
{
    private TempDir(string path) => Path = path;

    public string Path { get; }

    public static TempDir Create(string prefix) =>
        new(Directory.CreateTempSubdirectory(prefix + "-").FullName);

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a process we started may still hold a file.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
