using LiteDB;

namespace MitmCache.Caching;

/// <summary>
/// One collection of the <see cref="IndexDatabase"/>, as its store holds it. A LiteDB collection belongs to one
/// opening of the file, and the file is reopened after an engine failure, so the store keeps this handle
/// instead; the collection's indexes are ensured once per opening, before its first operation.
/// </summary>
internal sealed class IndexCollection<T>(IndexDatabase database, string name, Action<ILiteCollection<T>>? prepare)
{
    private sealed record Opened(LiteDatabase Database, ILiteCollection<T> Collection);

    private volatile Opened? _opened;

    /// <summary>Runs a query or a write that must succeed (see <see cref="IndexDatabase.Use{T}"/>).</summary>
    public TResult Use<TResult>(Func<ILiteCollection<T>, TResult> operation) => database.Use(d => operation(On(d)));

    /// <summary>Runs a bookkeeping write; false, and reported, when storage failed (see <see cref="IndexDatabase.TryWrite"/>).</summary>
    public bool TryWrite(Action<ILiteCollection<T>> write) => database.TryWrite(d => write(On(d)));

    /// <summary>The collection in this opening of the file: for <see cref="IndexDatabase.BeforeClose"/>, which holds the lock already.</summary>
    public ILiteCollection<T> On(LiteDatabase opened)
    {
        if (_opened is { } known && ReferenceEquals(known.Database, opened))
        {
            return known.Collection;
        }

        // Two threads may both get here after a reopen: ensuring an index twice is harmless.
        var collection = opened.GetCollection<T>(name);
        prepare?.Invoke(collection);
        _opened = new Opened(opened, collection);
        return collection;
    }
}
